// A typed reference to a task by name. Clients build pipelines from task
// references; they need not import worker code (see `taskRef`), though the
// worker SDK's task definitions are task references too.

import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { RetryPolicySchema, TaskCallSchema, TaskOptionsSchema, type TaskCall, type TaskOptions } from "@pipewright/protocol";
import type { Value } from "@pipewright/protocol";
import { Pipeline } from "./pipeline-builder.js";
import { encodeValue } from "@pipewright/protocol";
import { recordJobCall, type JobValue } from "./job-recorder.js";

/** How a failed call is retried. Delays in milliseconds. */
export interface RetryOptions {
  /** Total attempts, the first included (1 = no retry). */
  maxAttempts?: number;
  initialDelayMs?: number;
  /** 1 gives a fixed delay; default 2. */
  backoffFactor?: number;
  maxDelayMs?: number;
  /** Error types that retry; default: all but terminal ones. */
  retryOn?: string[];
}

/** Per-call options; unset ones take the server's defaults. */
export interface TaskCallOptions {
  retry?: RetryOptions;
  /** Only workers serving this queue receive the task. */
  queue?: string;
  displayName?: string;
  /** Longest wait for a worker before failing with pipewright.Timeout. */
  waitTimeoutMs?: number;
  /** Longest run time of one attempt. */
  executionTimeoutMs?: number;
  /** Longest silence from the worker before the attempt counts as lost. */
  heartbeatTimeoutMs?: number;
}

/** `A` or any of its tails: what a call may give when leading arguments come from the pipeline. */
export type Tails<A extends readonly unknown[]> = A extends readonly [unknown, ...infer Rest] ? A | Tails<Rest> : A;

/**
 * A task by name, with its argument and result types.
 *
 * @example
 *   const multiply = taskRef<[x: number, y: number], number>("multiply");
 *   const p = multiply.send(3, 2); // Pipeline<number>
 */
export class TaskRef<A extends unknown[] = unknown[], R = unknown> {
  /** Type-only: makes argument types contravariant, so checks read like a function call's. */
  declare readonly __signature: (...args: A) => R;

  constructor(
    readonly name: string,
    readonly options: TaskCallOptions = {},
    readonly kwargs: Readonly<Record<string, unknown>> = {},
  ) {}

  /** A one-step pipeline calling the task with all its arguments. */
  send(...args: A): Pipeline<R> {
    return Pipeline.ofCall<R>(this.toCall(args));
  }

  /**
   * A one-step pipeline whose leading argument(s) come from the pipeline: the
   * initial arguments (`withInitial`) or, inside a group that follows a step,
   * that step's result.
   *
   * @example
   *   inParallel([multiply.partial(1), multiply.partial(2)]).withInitial({ args: [2] })
   */
  partial(...args: Tails<A>): Pipeline<R> {
    return Pipeline.ofCall<R>(this.toCall(args as unknown[]));
  }

  /**
   * A mutable signature (canvas style): the call's own arguments; in a chain
   * the previous result is prepended. Same as `partial`.
   *
   * @example chain(extract.s(url), transform.s(), load.s())
   */
  s(...args: Tails<A>): Pipeline<R> {
    return this.partial(...args);
  }

  /**
   * An immutable signature: the call gets exactly these arguments and ignores
   * the previous result.
   *
   * @example chain(stepA.s(input), stepB.si(independentInput), stepC.s())
   */
  si(...args: A): Pipeline<R> {
    return Pipeline.ofCall<R>(this.toCall(args, { ignoreInput: true }));
  }

  /**
   * Inside a `job()` builder: records a call of this task and returns a
   * placeholder for its result. Passing a placeholder as an argument of
   * another call makes that call depend on this one.
   *
   * @example job("report", () => { const d = download.call(url); return [summarize.call(d)]; })
   */
  call(...args: { [K in keyof A]: A[K] | JobValue<A[K]> }): JobValue<R> {
    return recordJobCall(this, args as unknown[]);
  }

  /** The same task with other options (merged over the current ones). */
  withOptions(options: TaskCallOptions): TaskRef<A, R> {
    return new TaskRef<A, R>(this.name, { ...this.options, ...options }, this.kwargs);
  }

  /** The same task with keyword arguments (read in task code with `currentTask().kwargs`). */
  withKwargs(kwargs: Record<string, unknown>): TaskRef<A, R> {
    return new TaskRef<A, R>(this.name, this.options, { ...this.kwargs, ...kwargs });
  }

  /** @internal The protobuf call with the given own arguments. */
  toCall(args: readonly unknown[], extra: { ignoreInput?: boolean } = {}): TaskCall {
    const kwargs: Record<string, Value> = {};
    for (const [k, v] of Object.entries(this.kwargs)) kwargs[k] = encodeValue(v);
    return create(TaskCallSchema, {
      task: this.name,
      args: args.map(encodeValue),
      kwargs,
      options: toTaskOptions(this.options),
      ignoreInput: extra.ignoreInput ?? false,
    });
  }
}

/** A reference to a task served by some worker, known only by name. */
export function taskRef<A extends unknown[] = unknown[], R = unknown>(name: string, options: TaskCallOptions = {}): TaskRef<A, R> {
  return new TaskRef<A, R>(name, options);
}

function toTaskOptions(o: TaskCallOptions): TaskOptions | undefined {
  if (Object.keys(o).length === 0) return undefined;
  const ms = (v: number | undefined) => (v === undefined ? undefined : durationFromMs(v));
  return create(TaskOptionsSchema, {
    queue: o.queue ?? "",
    displayName: o.displayName ?? "",
    waitTimeout: ms(o.waitTimeoutMs),
    executionTimeout: ms(o.executionTimeoutMs),
    heartbeatTimeout: ms(o.heartbeatTimeoutMs),
    retry: o.retry
      ? create(RetryPolicySchema, {
          maxAttempts: o.retry.maxAttempts ?? 0,
          initialDelay: ms(o.retry.initialDelayMs),
          backoffFactor: o.retry.backoffFactor ?? 0,
          maxDelay: ms(o.retry.maxDelayMs),
          retryOn: o.retry.retryOn ?? [],
        })
      : undefined,
  });
}
