// `npm start`: the server, as `pipewright server` runs it (cli/program.ts):
// the same flags, environment variables and --help.

import { runCli } from "./cli/program.js";

runCli(["server", ...process.argv.slice(2)]).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`pipewright failed to start: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
