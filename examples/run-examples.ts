// `npm run examples [-- --json]`: starts a server (embedded PostgreSQL in
// .pipewright/examples-db, or DATABASE_URL) and a worker in this process, runs
// every example pipeline against them and prints each result: one JSON line
// per example with --json ({"name": ..., "result": ...} or {"name": ..., "error": ...}),
// a table otherwise. Exits non-zero if an example does not give what the
// reference document says.

import { PipewrightClient, RunFailedError } from "@pipewright/client";
import { DEFAULT_CONFIG } from "../server/config.js";
import { startServer } from "../server/server.js";
import { Worker } from "@pipewright/worker";
import { examples } from "./pipelines.js";
import { allTasks } from "./tasks.js";

const json = process.argv.includes("--json");
const server = await startServer({
  ...DEFAULT_CONFIG,
  address: "127.0.0.1:0",
  databaseUrl: process.env.DATABASE_URL ?? "",
  dataDir: process.env.PIPEWRIGHT_DATA_DIR ?? ".pipewright/examples-db",
});
const worker = new Worker({ address: server.address, tasks: allTasks, slots: 32 });
await worker.start();
const client = new PipewrightClient(server.address);

type Line = { name: string; result?: unknown; error?: string };
const lines: Line[] = await Promise.all(
  examples.map(async (e): Promise<Line> => {
    try {
      return { name: e.name, result: await client.submitAndWait(e.build(), { name: `example:${e.name}` }) };
    } catch (err) {
      const message = err instanceof RunFailedError ? `${err.error.type}: ${err.error.message}` : String((err as Error).message ?? err);
      return { name: e.name, error: message };
    }
  }),
);

let mismatches = 0;
for (const [i, line] of lines.entries()) {
  const ok = line.error === undefined && JSON.stringify(line.result) === JSON.stringify(examples[i].expected);
  if (!ok) mismatches++;
  if (json) console.log(JSON.stringify(line));
  else
    console.log(
      `${ok ? "ok  " : "FAIL"} ${line.name.padEnd(16)} ${line.error ?? JSON.stringify(line.result)}${ok ? "" : `   (expected ${JSON.stringify(examples[i].expected)})`}`,
    );
}
client.close();
await worker.stop();
await server.stop();
process.exit(mismatches ? 1 : 0);
