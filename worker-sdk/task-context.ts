// What a running task can ask about itself, without extra parameters in its
// signature (the same approach as Temporal's Context.current()).

import { AsyncLocalStorage } from "node:async_hooks";
import type { PublishEvent } from "./task-events.js";

export interface TaskContext {
  /** The task name. */
  readonly task: string;
  readonly runId: string;
  readonly stepId: number;
  /** 1 for the first try, 2 for the first retry... */
  readonly retryNumber: number;
  /**
   * The attempt (fencing) number: grows with every hand-out of the step,
   * including re-runs after a lost worker. With runId and stepId it names
   * this execution; use runId + stepId (+ retryNumber) as an idempotency key.
   */
  readonly attempt: number;
  /** Where the step sits in the run, e.g. "steps[1].group.branches[0].steps[0]". */
  readonly path: string;
  /** Keyword arguments of the call. */
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** For DAG nodes: the results of the nodes this one depends on, by node id. */
  readonly parentResults: Readonly<Record<string, unknown>> | undefined;
  /** Aborted when the run is cancelled, the attempt times out, or the worker stops. */
  readonly signal: AbortSignal;
  /** Extends the attempt's lease now, optionally reporting progress (JSON). */
  heartbeat(progress?: unknown): void;
  /**
   * Publishes an event from task code (the worker's server, token and namespace): every
   * matching trigger starts one run. The default event id is derived from the run, the step's
   * path and this call's rank within the attempt, not the attempt number: a task re-run after
   * a crash publishes the same ids, and starts nothing twice (README: Events and triggers).
   * @example
   *   await currentTask().publishEvent("invoice.sent", { invoice: 42 });
   */
  publishEvent: PublishEvent;
}

const storage = new AsyncLocalStorage<TaskContext>();

/**
 * The context of the task being run. Throws outside a task.
 *
 * @example
 *   const slow = task("slow", async () => {
 *     const { signal, heartbeat } = currentTask();
 *     for (const chunk of work) { if (signal.aborted) return; heartbeat({ done: chunk.index }); }
 *   });
 */
export function currentTask(): TaskContext {
  const ctx = storage.getStore();
  if (!ctx) throw new Error("currentTask() called outside a running task");
  return ctx;
}

export function runWithContext<T>(ctx: TaskContext, fn: () => T): T {
  return storage.run(ctx, fn);
}
