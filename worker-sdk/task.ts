// Task definitions: a name, a typed function, and how it wants to be called.
// A definition is also a TaskRef, so the same object builds pipelines.

import type { Pipeline } from "@pipewright/client";
import { TaskRef, type TaskCallOptions } from "@pipewright/client";

export interface TaskDefinitionOptions extends TaskCallOptions {
  /**
   * For DAG nodes whose parent-results mode is AUTO: receive the parents'
   * results (an object keyed by parent node id) as the first argument.
   */
  parentResults?: boolean;
}

/** What a task's result type is when the function may return a pipeline instead. */
export type TaskResultOf<R> = R extends Pipeline<infer X> ? X : R;

/** A task a worker can run. */
export class TaskDefinition<A extends unknown[] = any[], R = unknown> extends TaskRef<A, R> {
  constructor(
    name: string,
    /** The function; for stateful tasks its first parameter is the state. */
    readonly fn: (...args: any[]) => unknown,
    readonly withState: boolean,
    readonly definitionOptions: TaskDefinitionOptions = {},
  ) {
    const { parentResults: _, ...callOptions } = definitionOptions;
    super(name, callOptions);
  }

  get wantsParentResults(): boolean {
    return this.definitionOptions.parentResults ?? false;
  }
}

/**
 * Defines a task. The function may be async, may return a value or a
 * pipeline (run as a child; its result becomes this task's result), and may
 * throw (a `TerminalError` is never retried). Inside it, `currentTask()` gives
 * the AbortSignal, heartbeat, attempt number and keyword arguments.
 *
 * @example
 *   export const multiply = task("multiply", (x: number, y: number) => x * y);
 *   const p = multiply.send(3, 2);
 */
export function task<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => R,
  options: TaskDefinitionOptions = {},
): TaskDefinition<A, TaskResultOf<Awaited<R>>> {
  return new TaskDefinition(name, fn as (...args: any[]) => unknown, false, options);
}

/**
 * Defines a task that receives the pipeline state first and returns
 * `[newState, result]`. Other tasks pass the state along untouched.
 *
 * @example
 *   const addState = statefulTask("add_state", (state: number, x: number) => [state, state + x] as [number, number]);
 */
export function statefulTask<S, A extends unknown[], R>(
  name: string,
  fn: (state: S, ...args: A) => readonly [S, R] | Promise<readonly [S, R]>,
  options: TaskDefinitionOptions = {},
): TaskDefinition<A, TaskResultOf<R>> {
  return new TaskDefinition(name, fn as (...args: any[]) => unknown, true, options);
}

/** Throw this (or a subclass) from a task to fail without any retry. */
export class TerminalError extends Error {
  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "TerminalError";
  }
}
