// @pipewright/worker/testing: run pipelines and jobs in this process, with no
// server, by plain recursion: for unit tests of tasks and pipelines (it is the
// reference the server is tested against).
// @example
//   import { runLocally } from "@pipewright/worker/testing";
//   const out = await runLocally(multiply.send(3, 2), { tasks: [multiply] }); // { ok: true, value: 6, ... }

export { runLocally, runJobLocally, type LocalRunOptions, type LocalOutcome, type LocalArrival } from "./local-runner.js";
export { VirtualClock } from "./virtual-clock.js";
