// Tokens: what a caller presents (`authorization: Bearer <secret>`) and what the
// server keeps of it (a name, scopes, and the SHA-256 of the secret: never the
// secret). The tokens file holds one token a line:
//
//   # comment
//   ci-submitter submit,read sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//   team-a-worker worker sha256:… team-a
//   operator all sha256:… *
//
// The fourth field, optional, lists the namespaces the token may work in
// ("team-a,team-b", or * for every one); without it, the default namespace only.
// `pipewright token create` prints a fresh secret once and the line to add.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { DEFAULT_NAMESPACE, namespaceProblem } from "@pipewright/protocol";

/** What a token may do; each method of the API needs exactly one (auth.ts, METHOD_SCOPES); `metrics`: GET /metrics. */
export const SCOPES = ["submit", "read", "control", "worker", "admin", "metrics"] as const;
export type Scope = (typeof SCOPES)[number];

/** A token that may work in every namespace (`*` in the tokens file; the environment's admin token). */
export const ALL_NAMESPACES = "*";

export interface Token {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** The namespaces it may work in, or every one. */
  namespaces: ReadonlySet<string> | typeof ALL_NAMESPACES;
  /** SHA-256 of the secret (32 bytes). */
  hash: Buffer;
}

/** Secrets shorter than this are refused (the environment's admin token; generated ones are 46 characters). */
export const MIN_SECRET_LENGTH = 20;
const NAME = /^[A-Za-z0-9._:@-]{1,100}$/;
const HASH = /^sha256:([0-9a-f]{64})$/;

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** Scopes from "submit,read" (or "all"); throws on an unknown one. */
export function parseScopes(text: string): Scope[] {
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new Error(`no scopes given (scopes: ${SCOPES.join(", ")}, or all)`);
  if (names.length === 1 && names[0] === "all") return [...SCOPES];
  for (const n of names)
    if (!(SCOPES as readonly string[]).includes(n)) throw new Error(`unknown scope ${JSON.stringify(n)} (scopes: ${SCOPES.join(", ")}, or all)`);
  return [...new Set(names as Scope[])];
}

/** Namespaces from "team-a,team-b" (or "*": every one); throws on a malformed name. */
export function parseNamespaces(text: string): Token["namespaces"] {
  if (text === ALL_NAMESPACES) return ALL_NAMESPACES;
  const names = text.split(",").map((s) => s.trim());
  for (const n of names) {
    const problem = namespaceProblem(n);
    if (problem) throw new Error(`namespaces: ${problem} (or * for every namespace)`);
  }
  return new Set(names);
}

/** The tokens of a tokens file; throws, naming the line, on anything malformed (or a name or hash given twice). */
export function parseTokensFile(text: string, file = "tokens file"): Token[] {
  const tokens: Token[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${file} line ${i + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 3 && fields.length !== 4)
      throw new Error(`${where}: expected "NAME SCOPES sha256:HEX [NAMESPACES]" (three or four fields), got ${fields.length}`);
    const [name, scopes, hash, namespaceList = DEFAULT_NAMESPACE] = fields;
    if (!NAME.test(name)) throw new Error(`${where}: a name is 1 to 100 of A-Z a-z 0-9 . _ : @ -`);
    let parsed: Scope[];
    try {
      parsed = parseScopes(scopes);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    const m = HASH.exec(hash);
    if (!m) throw new Error(`${where}: the third field must be sha256: and 64 lowercase hex digits (the hash of the secret, not the secret)`);
    let namespaces: Token["namespaces"];
    try {
      namespaces = parseNamespaces(namespaceList);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    const token: Token = { name, scopes: new Set(parsed), namespaces, hash: Buffer.from(m[1], "hex") };
    if (tokens.some((t) => t.name === name)) throw new Error(`${where}: the name ${name} is used twice`);
    if (tokens.some((t) => t.hash.equals(token.hash))) throw new Error(`${where}: the same secret (hash) is used twice`);
    tokens.push(token);
  }
  return tokens;
}

/** The token the secret belongs to. Compares against every token's hash in constant time, whichever matches. */
export function findToken(tokens: readonly Token[], secret: string): Token | undefined {
  const hash = hashSecret(secret);
  let found: Token | undefined;
  for (const t of tokens) if (timingSafeEqual(t.hash, hash) && !found) found = t;
  return found;
}

/** A fresh token: its secret (shown once) and its line for the tokens file. */
export function createToken(name: string, scopes: Scope[], namespaces = DEFAULT_NAMESPACE): { secret: string; line: string } {
  if (!NAME.test(name)) throw new Error("a name is 1 to 100 of A-Z a-z 0-9 . _ : @ -");
  parseNamespaces(namespaces);
  const secret = `pw_${randomBytes(32).toString("base64url")}`;
  const line = `${name} ${scopes.join(",")} sha256:${hashSecret(secret).toString("hex")}`;
  return { secret, line: namespaces === DEFAULT_NAMESPACE ? line : `${line} ${namespaces}` };
}
