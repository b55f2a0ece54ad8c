// `npm start`: configuration and wiring only (see server.ts for the parts).

import v8 from "node:v8";
import { helpText, parseConfig } from "./config.js";
import { startServer, STOP_SLACK_MS } from "./server.js";

// V8 lets the heap grow to up to four times what was live at the last full
// collection before it collects again. A 100,000-branch run keeps ~150 MB live
// and the heap then grew, mostly with garbage, to 630 MB resident. Growing by
// at most half the live set keeps the peak near 450 MB, for the same run time
// (bench fanout). The price is more full collections: in the throughput
// scenario within noise in one A/B (medians 4,130 vs 4,310 tasks/s), up to
// 15% in another. A policy switching this on only for big heaps missed the
// 500 MB mark once in two runs. A --heap-growing-percent given to node wins.
if (!process.execArgv.some((a) => a.startsWith("--heap-growing-percent"))) v8.setFlagsFromString("--heap-growing-percent=50");

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
    // stop() gives up on commits after the drain grace + STOP_SLACK_MS; this
    // covers the rest (closing the pool, stopping the embedded PostgreSQL,
    // normally well under a second), should any of it hang: one signal stops.
    const backstopMs = config.drainGraceMs + STOP_SLACK_MS + 15_000;
    setTimeout(() => {
      log(`still stopping after ${backstopMs} ms: exiting now`);
      process.exit(1);
    }, backstopMs).unref();
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
