// Runs the `pipewright` command in this process against a server, its output
// captured: for the CLI tests of one group of verbs.

import { runCli, type Io } from "../../server/cli/program.js";

/** `pipewright ...args --address address`, with `stdin`; its exit code and what it wrote. */
export async function runCliAt(address: string, args: string[], stdin = ""): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = { out: (t) => (out += t), err: (t) => (err += t), stdin: () => stdin, isTTY: false, rows: 40 };
  const code = await runCli([...args, "--address", address], io);
  return { code, out, err };
}
