// The heap that waiting runs hold, after garbage collection: a server started
// in this process (run with --expose-gc), on a real PostgreSQL and a real
// gRPC port, N runs submitted over gRPC, then the heap measured once they all
// wait (parked, with parking on). The heap's in-use figure of a server
// process without a forced collection counts garbage not yet collected, so
// bench/waiting.ts runs this for the heap and the server process for the rest.
//
// node --expose-gc --import tsx bench/waiting-heap.ts --database-url URL --runs N [--parking]

import { PipewrightClient } from "../client/client.js";
import { sleep, waitForSignal } from "../client/pipeline-builder.js";
import { taskRef } from "../client/task-ref.js";
import { DEFAULT_CONFIG } from "../server/config.js";
import { startServer } from "../server/server.js";

const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1];
const runs = Number(arg("--runs"));
const parking = process.argv.includes("--parking");
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const heapMB = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};
const stamp = taskRef<[x: unknown], unknown>("stamp");
const server = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: arg("--database-url"), parkWaitsOverMs: parking ? 1000 : 0 });
const client = new PipewrightClient(server.address);
try {
  const before = heapMB();
  for (let i = 0; i < runs; i += 1000) {
    const n = Math.min(1000, runs - i);
    await client.submitMany(Array.from({ length: n }, (_, k) => ((i + k) % 2 ? sleep(600_000).continueWith(stamp) : waitForSignal("go"))));
  }
  for (const until = Date.now() + 300_000; parking && Date.now() < until;) {
    const [{ n }] = await server.sql<{ n: number }[]>`select count(*)::int as n from runs where parked`;
    if (n >= runs) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const after = heapMB();
  console.log(
    JSON.stringify({
      runs,
      parking,
      heapBeforeMB: Math.round(before),
      heapAfterMB: Math.round(after),
      bytesPerRun: Math.round(((after - before) * 2 ** 20) / runs),
      heldInMemory: server.engine.stats().activeRuns,
    }),
  );
} finally {
  client.close();
  await server.stop();
}
