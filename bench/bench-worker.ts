// The benchmark's worker process: no-op tasks, as cheap as a task can be, so
// that what is measured is the orchestration.
//   PIPEWRIGHT_ADDRESS=host:port[,host:port] BENCH_SLOTS=256 node --import tsx bench/bench-worker.ts

import { task } from "../worker-sdk/task.js";
import { Worker } from "../worker-sdk/worker.js";

export const noop = task("noop", () => null);
export const one = task("one", () => 1);
export const sum = task("sum", (xs: number[]) => xs.reduce((a, b) => a + b, 0));
export const inc = task("inc", (x: number) => x + 1);
export const benchTasks = [noop, one, sum, inc];

if (process.argv[1]?.endsWith("bench-worker.ts")) {
  const worker = new Worker({ tasks: benchTasks, slots: Number(process.env.BENCH_SLOTS ?? 256), reconnectDelayMs: { initial: 20, max: 200 } });
  await worker.start();
  console.log("bench worker ready");
  process.once("SIGTERM", () => worker.stop().then(() => process.exit(0)));
}
