// A worker as its own OS process, for fault tests that kill workers:
//   PIPEWRIGHT_ADDRESS=... FAULT_JOURNAL=/path node --import tsx test/support/fault-worker.ts
// Serves the random-pipeline tasks (plus `nap`) and appends one line per
// execution to FAULT_JOURNAL ({"run","step","retry","attempt","pid"}), so the
// test can count executions (and duplicates) across kills.

import { appendFileSync } from "node:fs";
import { TaskDefinition } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { Worker } from "../../worker-sdk/worker.js";
import { randomTasks } from "./random-pipelines.js";
import { nap } from "./test-tasks.js";

const journal = process.env.FAULT_JOURNAL;
if (!journal) throw new Error("FAULT_JOURNAL is required");
const workMs = Number(process.env.FAULT_WORK_MS ?? 2);

function journaled(def: TaskDefinition<any, any>): TaskDefinition<any, any> {
  return new TaskDefinition(
    def.name,
    async (...args: unknown[]) => {
      const c = currentTask();
      appendFileSync(journal!, JSON.stringify({ run: c.runId, step: c.stepId, retry: c.retryNumber, attempt: c.attempt, pid: process.pid }) + "\n");
      // A little work, so that kills land while tasks run.
      if (workMs) await new Promise((r) => setTimeout(r, workMs));
      return def.fn(...args);
    },
    def.withState,
    def.definitionOptions,
  );
}

const worker = new Worker({
  tasks: [...randomTasks, nap].map(journaled),
  slots: Number(process.env.FAULT_SLOTS ?? 16),
  reconnectDelayMs: { initial: 50, max: 300 },
});
await worker.start();
console.log("fault worker ready");
process.once("SIGTERM", () => worker.stop().then(() => process.exit(0)));
