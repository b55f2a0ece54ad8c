// `npm start`: configuration and wiring only (see server.ts for the parts).

import { helpText, parseConfig } from "./config.js";
import { startServer } from "./server.js";

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help")) {
    console.log(helpText());
    return;
  }
  const config = parseConfig(argv, process.env);
  const server = await startServer(config, log);
  console.log(`pipewright listening on ${server.address}, database: ${server.database}`);
  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      log(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    log(`${signal}: draining workers and stopping`);
    server.stop().then(
      () => process.exit(0),
      (err) => {
        log(`shutdown failed: ${err?.stack ?? err}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((err) => {
  console.error(`pipewright failed to start: ${err?.stack ?? err}`);
  process.exit(1);
});
