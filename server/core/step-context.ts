// What the drivers of some kinds of steps (group-steps.ts, dag-steps.ts,
// wait-steps.ts, task-steps.ts) may
// do to the run machine that holds them: read its graph, time and stopping
// state, mark steps, queue work on its agenda, emit effects, dispatch tasks
// and move a pipeline on. The machine gives them this, not itself: what they
// can touch is written here.

import type { RunState, TaskCall, TaskError } from "@pipewright/protocol";
import type { Effect, MachineConfig, MachineStatus } from "./machine-types.js";
import type { ValueStats } from "@pipewright/protocol";
import type { Flow, RunGraph, Scope, Step, StepCode, TaskInput, TaskStep } from "./run-graph.js";

export interface StepContext {
  readonly graph: RunGraph;
  /** The time of the input being applied (ms since the epoch). */
  readonly now: number;
  /** Set once a cancel or the run timeout was applied: only finally steps still run. */
  readonly stopping?: { error: TaskError; finalState: RunState; finallyFailure?: TaskError };
  mark(step: Step, status: StepCode): void;
  /** Queues work on the machine's agenda (run after what is queued, not on the stack). */
  later(job: () => void): void;
  emit(effect: Effect): void;
  /** Runs a scope's steps from `index` with `flow` (the step before it is done). */
  runFrom(scope: Scope, index: number, flow: Flow): void;
  dispatch(step: TaskStep, input: TaskInput): void;
  /** A task's input from the flow reaching it. */
  taskInput(call: TaskCall, flow: Flow): TaskInput;
  /** Starts a pipeline scope (a group's branch) with its incoming flow. */
  startScope(scope: Scope, flow: Flow): void;
  /** Marks a step that never started, and everything inside it. */
  settleUnstarted(step: Step, status: "skipped" | "cancelled"): void;
}

/** What the task driver (task-steps.ts) may do besides: read the limits and whether the run is paused, end a scope. */
export interface TaskContext extends StepContext {
  readonly config: MachineConfig;
  readonly status: MachineStatus;
  /** Why a value cannot be sent on (too big, too deep), if it cannot. */
  overLimits(s: ValueStats, what: string): string | undefined;
  /** A scope's steps (and finally step) are done: its parent goes on. */
  finishScope(scope: Scope, flow: Flow): void;
}
