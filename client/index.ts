// @pipewright/client: build pipelines (continuations, groups, DAG workflows,
// canvas, jobs) and run them on a Pipewright server.
// @example
//   import { PipewrightClient, taskRef, inParallel } from "@pipewright/client";
//   const multiply = taskRef<[x: number, y: number], number>("multiply");
//   const client = new PipewrightClient("127.0.0.1:50051");
//   const run = await client.submit(inParallel([multiply.send(3, 2), multiply.send(4, 5)]));
//   console.log(await run.result()); // [6, 20]

export * from "./client.js";
export * from "./schedules.js";
export * from "./events.js";
export { CallError, ServerUnavailableError } from "./call-errors.js";
export { extractTraceContext, injectTraceContext, w3cTraceContext } from "./trace-context.js";
export * from "./pipeline-builder.js";
export * from "./task-ref.js";
export * from "./canvas.js";
export * from "./workflow.js";
export * from "./job.js";
export { JobValue } from "./job-recorder.js";
// What results and errors arrive as, and how values travel (from the protocol package).
export { RemoteError, encodeValue, decodeValue, ErrorTypes, type Violation } from "@pipewright/protocol";
