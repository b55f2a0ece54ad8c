// @pipewright/worker: define tasks and run them for a Pipewright server.
// @example
//   import { task, Worker } from "@pipewright/worker";
//   const multiply = task("multiply", (x: number, y: number) => x * y);
//   await new Worker({ tasks: [multiply], slots: 8 }).start();
// Testing without a server: "@pipewright/worker/testing" (runLocally, runJobLocally).

export * from "./task.js";
export * from "./worker.js";
export { currentTask, type TaskContext } from "./task-context.js";
export { taskEventId, type PublishEvent, type PublishEventOptions, type PublishEventResult } from "./task-events.js";
export { RemoteError } from "@pipewright/protocol";
