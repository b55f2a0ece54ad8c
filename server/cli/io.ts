// Where the command writes and reads: the process's streams, or a test's buffers.

import { readFileSync } from "node:fs";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  stdin: () => string;
  isTTY: boolean;
  rows?: number;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  stdin: () => readFileSync(0, "utf8"),
  isTTY: Boolean(process.stdout.isTTY),
  rows: process.stdout.rows,
};
