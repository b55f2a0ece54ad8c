// A worker as its own OS process whose task publishes events, for the test
// that kills it mid-task (test/faults/task-events.test.ts):
//   PIPEWRIGHT_ADDRESS=... node --import tsx test/support/event-worker.ts
// `publish_twice` publishes "task.step" twice from task code, prints
// "published" and then waits forever: the test kills the process there.

import { task } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { Worker } from "../../worker-sdk/worker.js";

const publishTwice = task("publish_twice", async (label: string) => {
  const ctx = currentTask();
  await ctx.publishEvent("task.step", { label, n: 1 });
  await ctx.publishEvent("task.step", { label, n: 2 });
  console.log("published");
  await new Promise(() => {}); // killed here
});

const worker = new Worker({ tasks: [publishTwice], log: () => {} });
await worker.start();
console.log("event worker ready");
