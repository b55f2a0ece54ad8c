#!/usr/bin/env node
// The `pipewright` executable (see program.ts; `pipewright --help`).

import { runCli } from "./program.js";

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`pipewright: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(70);
  },
);
