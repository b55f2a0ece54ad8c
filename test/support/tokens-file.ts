// A tokens file (--tokens-file) holding the lines of tokens made by createToken
// (server/api/tokens.ts): written to `file`, or to a new temporary folder.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** Writes the tokens' lines, one per line; returns the file's path. */
export function writeTokensFile(
  tokens: Record<string, { line: string }> | { line: string }[],
  file = path.join(mkdtempSync(path.join(tmpdir(), "pipewright-tokens-")), "tokens"),
): string {
  writeFileSync(
    file,
    `${Object.values(tokens)
      .map((t) => t.line)
      .join("\n")}\n`,
  );
  return file;
}
