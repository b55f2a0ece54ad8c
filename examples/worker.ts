// The example worker: serves every task of examples/tasks.ts.
//   npm run worker:example            (server at PIPEWRIGHT_ADDRESS or 127.0.0.1:50051)
// SIGINT/SIGTERM drain it: running tasks finish, nothing new is taken.

import { Worker } from "@pipewright/worker";
import { allTasks } from "./tasks.js";

const worker = new Worker({ tasks: allTasks, slots: Number(process.env.WORKER_SLOTS ?? 16), log: (l) => console.log(`worker: ${l}`) });
await worker.start();
console.log(`worker ready: ${allTasks.length} tasks, ${process.env.WORKER_SLOTS ?? 16} slots`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.log(`worker: ${signal}, draining`);
    worker.stop().then(() => process.exit(0));
  });
}
