// The run machine's vocabulary: its configuration, the inputs it applies and
// the effects it returns (server/core/run-machine.ts), shared with the parts
// that drive kinds of steps (dag-steps.ts, wait-steps.ts) and with the engine.

import type { ParentResults, TaskCall, TaskError, TaskResult, Value } from "@pipewright/protocol";
import { MAX_VALUE_BYTES, MAX_VALUE_DEPTH, RunState } from "@pipewright/protocol";
import { DEFAULT_RETRY, type EffectiveRetry } from "./retry-policy.js";
import type { TaskInput } from "./run-graph.js";

export interface MachineConfig {
  /** Deepest nesting of child pipelines (a task returning a pipeline adds one level). */
  maxDepth: number;
  /** Most task steps one run may hold, child pipelines included. */
  maxTasks: number;
  /** Largest task input, and run result, in bytes (see proto/runtime/value-size.ts). */
  maxValueBytes: number;
  /** Deepest task input, and run result (values nested in values). */
  maxValueDepth: number;
  /** Retry policy for tasks that set none. */
  defaultRetry: EffectiveRetry;
}

export const DEFAULT_MACHINE_CONFIG: MachineConfig = {
  maxDepth: 10_000,
  maxTasks: 500_000,
  maxValueBytes: MAX_VALUE_BYTES,
  maxValueDepth: MAX_VALUE_DEPTH,
  defaultRetry: DEFAULT_RETRY,
};

export type TaskOutcome = TaskResult["outcome"];

/** Events, in the order they are applied. `at` is milliseconds since the epoch. */
export type RunInput =
  | { type: "start"; at: number }
  | { type: "taskFinished"; at: number; step: number; outcome: TaskOutcome; state?: Value; startedAt?: number }
  | { type: "cancel"; at: number; reason: string }
  | { type: "timeout"; at: number }
  | { type: "pause"; at: number }
  | { type: "resume"; at: number }
  /** Time passed: every wait whose time has come ends (a sleep) or times out. */
  | { type: "wake"; at: number }
  /** RunService.SignalRun: ends the wait for `name` that began first, or is kept until one begins. `id`: repeats are dropped. */
  | { type: "signal"; at: number; name: string; payload: Value; id?: string }
  /** An event published in the run's namespace: ends every wait for `name` (nothing is kept when none waits). */
  | { type: "event"; at: number; name: string; payload: Value; id?: string };

/** What the last signal applied did: ended a wait, was kept for one, or repeated a signal id. */
export type SignalOutcome = "delivered" | "kept" | "duplicate";

/** What one attempt needs besides its key. */
export interface Dispatch {
  step: number;
  /** 1 for the first try, 2 for the first retry... */
  retry: number;
  /** Not to be handed to a worker before this time (retry backoff). */
  notBefore: number;
  call: TaskCall;
  input: TaskInput;
  parentResultsMode: ParentResults;
  path: string;
  /** About the bytes of the input's values (measured for the limits; reused to encode and pack it). */
  inputBytes: number;
}

export type Effect =
  | { type: "dispatch"; dispatch: Dispatch }
  /** Stop an attempt: drop it from the queue, tell the worker running it. */
  | { type: "cancelTask"; step: number }
  /** Hold queued attempts (pause) or release them (resume). */
  | { type: "holdQueued"; held: boolean }
  /** A wait for an event began (`on`) or ended: the engine keeps the index publishers look in. */
  | { type: "eventWait"; step: number; name: string; on: boolean }
  | { type: "finished"; state: RunState; outcome: { error: TaskError } | { value: Value }; finalState?: Value };

export type MachineStatus = "running" | "paused" | "finished";
