// The immutable, typed pipeline builder. Every method returns a new Pipeline;
// `toProto()` validates (with the server's own validator) and produces the
// protobuf message, with no I/O, so tests can inspect it directly.
//
// @example
//   const p = multiply.send(3, 2).continueWith(divide, 2);        // Pipeline<number>
//   const q = inParallel([multiply.send(3, 2), multiply.send(4, 5)]).continueWith(average);

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  GroupSchema,
  PipelineSchema,
  StepSchema,
  WaitSchema,
  type Pipeline as PipelineMessage,
  type Step,
  type TaskCall,
  type Wait,
} from "@pipewright/protocol";
import type { Value } from "@pipewright/protocol";
import { formatViolations, validatePipeline, type PipelineRole, type Violation } from "@pipewright/protocol";
import { encodeState, encodeValue, type RemoteError } from "@pipewright/protocol";

/** Thrown by `toProto()` when the pipeline breaks a rule; lists every violation. */
export class PipelineValidationError extends Error {
  constructor(readonly violations: Violation[]) {
    super(`invalid pipeline: ${formatViolations(violations)}`);
    this.name = "PipelineValidationError";
  }
}

/** Arguments, keyword arguments and state given once to a pipeline's entry tasks. */
export interface InitialParameters {
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  state?: unknown;
}

export interface GroupOptions {
  /** At most this many branches run at once (a semaphore). */
  maxParallelism?: number;
  /** Split the branches into this many stages (same result). */
  numStages?: number;
  /** Put a failed branch's error in its result slot instead of failing the group. */
  returnExceptions?: boolean;
}

/**
 * What a pipeline step needs of a task: its typed signature (checked like a function call's)
 * and its protobuf call. `TaskRef` (task-ref.ts) is what users pass; it is named here only by
 * these two members because task-ref.ts imports this module to build its pipelines, and the
 * two modules must not import each other (no import cycles, type-only ones included).
 */
export interface StepTask<A extends unknown[] = unknown[], R = unknown> {
  /** Type-only, as on TaskRef. */
  readonly __signature: (...args: A) => R;
  /** @internal The protobuf call with the given own arguments. */
  toCall(args: readonly unknown[]): TaskCall;
}

/** The result type of a pipeline. */
export type ResultOf<P> = P extends Pipeline<infer R> ? R : never;

interface Parts {
  steps: readonly Step[];
  finally?: TaskCall;
  initialArgs: readonly Value[];
  initialKwargs: Readonly<Record<string, Value>>;
  initialState?: Value;
  inline: boolean;
}

export class Pipeline<R = unknown> {
  /** Type-only marker of the result type. */
  declare readonly __result: R;

  private constructor(private readonly parts: Parts) {}

  /** @internal A pipeline of one task call. */
  static ofCall<R>(call: TaskCall): Pipeline<R> {
    return new Pipeline<R>({ steps: [create(StepSchema, { kind: { case: "task", value: call } })], initialArgs: [], initialKwargs: {}, inline: false });
  }

  /** @internal A pipeline of one step. */
  static ofStep<R>(step: Step): Pipeline<R> {
    return new Pipeline<R>({ steps: [step], initialArgs: [], initialKwargs: {}, inline: false });
  }

  private with(parts: Partial<Parts>): Pipeline<any> {
    return new Pipeline({ ...this.parts, ...parts });
  }

  private assertOpen(what: string): void {
    if (this.parts.finally) throw new Error(`cannot add ${what} after finallyDo(): the finally step must be last`);
  }

  /**
   * Runs `task` next, with this pipeline's result as its first argument.
   * Given a pipeline instead, appends its steps (its entry tasks then receive
   * this pipeline's result as their leading argument).
   */
  continueWith<Rest extends unknown[], R2>(task: StepTask<[R, ...Rest], R2>, ...rest: Rest): Pipeline<Awaited<R2>>;
  continueWith<R2>(next: Pipeline<R2>): Pipeline<R2>;
  continueWith(next: StepTask<any, any> | Pipeline<any>, ...rest: unknown[]): Pipeline<any> {
    this.assertOpen("a step");
    if (next instanceof Pipeline) {
      if (next.parts.finally || next.parts.initialArgs.length || Object.keys(next.parts.initialKwargs).length || next.parts.initialState) {
        throw new Error("continueWith(pipeline): the appended pipeline must not have a finally step or initial parameters");
      }
      return this.with({ steps: [...this.parts.steps, ...next.parts.steps] });
    }
    return this.with({ steps: [...this.parts.steps, create(StepSchema, { kind: { case: "task", value: next.toCall(rest) } })] });
  }

  /**
   * Adds an exceptionally step: skipped while all is well; when an error is
   * flowing, `task` receives it (a RemoteError) first and its result resumes
   * normal flow.
   */
  exceptionally<Rest extends unknown[], R2>(task: StepTask<[RemoteError, ...Rest], R2>, ...rest: Rest): Pipeline<R | Awaited<R2>> {
    this.assertOpen("an exceptionally step");
    return this.with({ steps: [...this.parts.steps, create(StepSchema, { kind: { case: "exceptionally", value: task.toCall(rest) } })] });
  }

  /**
   * Ends the pipeline with a finally step: it runs once whatever happened,
   * receives the state and its own arguments, and does not change the
   * pipeline's result (unless it fails: then its error wins).
   */
  finallyDo<A extends unknown[]>(task: StepTask<A, unknown>, ...args: A): Pipeline<R> {
    this.assertOpen("a second finally step");
    return this.with({ finally: task.toCall(args) });
  }

  /**
   * Sleeps, durably, holding no worker: for `ms` milliseconds, or until a
   * time. The previous step's result passes on unchanged.
   */
  sleep(duration: number | { until: Date }, options: WaitOptions = {}): Pipeline<R> {
    return this.appendWait(sleepWait(duration, options));
  }

  /**
   * Waits for `client.signal(runId, name, payload)`, whose payload is this
   * step's result. A signal sent earlier is kept for it. `timeoutMs`: fail
   * with pipewright.Timeout if none arrives in time.
   */
  waitForSignal<T = unknown>(name: string, options: TimedWaitOptions = {}): Pipeline<T> {
    return this.appendWait(namedWait("signal", name, options));
  }

  /** Waits for an event of this name published after the step is reached; the event's payload is the step's result. */
  waitForEvent<T = unknown>(name: string, options: TimedWaitOptions = {}): Pipeline<T> {
    return this.appendWait(namedWait("event", name, options));
  }

  private appendWait(wait: Wait): Pipeline<any> {
    this.assertOpen("a wait");
    return this.with({ steps: [...this.parts.steps, create(StepSchema, { kind: { case: "wait", value: wait } })] });
  }

  /** Sets arguments, keyword arguments and state given once to the entry tasks. */
  withInitial(initial: InitialParameters): Pipeline<R> {
    return this.with({
      initialArgs: (initial.args ?? []).map(encodeValue),
      initialKwargs: Object.fromEntries(Object.entries(initial.kwargs ?? {}).map(([k, v]) => [k, encodeValue(v)])),
      initialState: initial.state === undefined ? undefined : encodeState(initial.state),
    });
  }

  /** For a pipeline returned by a task: share the parent's state. */
  inline(): Pipeline<R> {
    return this.with({ inline: true });
  }

  /** Validates and returns the protobuf message. Throws PipelineValidationError. */
  toProto(role: PipelineRole = "root"): PipelineMessage {
    const message = this.unchecked();
    const violations = validatePipeline(message, role);
    if (violations.length) throw new PipelineValidationError(violations);
    return message;
  }

  /** The message without validation (for nesting into a larger pipeline). */
  unchecked(): PipelineMessage {
    const p = this.parts;
    return create(PipelineSchema, {
      steps: [...p.steps],
      finally: p.finally,
      initialArgs: [...p.initialArgs],
      initialKwargs: { ...p.initialKwargs },
      initialState: p.initialState,
      inline: p.inline,
    });
  }
}

export interface WaitOptions {
  /** A name for run views. Default: derived from what it waits for ("sleep 5m", "signal approve"). */
  displayName?: string;
}

export interface TimedWaitOptions extends WaitOptions {
  /** Fail the step with pipewright.Timeout if nothing arrived this long after it was reached. Default: wait for ever. */
  timeoutMs?: number;
}

function sleepWait(duration: number | { until: Date }, options: WaitOptions): Wait {
  const condition =
    typeof duration === "number"
      ? { case: "duration" as const, value: durationFromMs(Math.max(0, duration)) }
      : { case: "time" as const, value: timestampFromMs(duration.until.getTime()) };
  return create(WaitSchema, { condition, displayName: options.displayName ?? "" });
}

function namedWait(kind: "signal" | "event", name: string, options: TimedWaitOptions): Wait {
  return create(WaitSchema, {
    condition: { case: kind, value: name },
    timeout: options.timeoutMs ? durationFromMs(options.timeoutMs) : undefined,
    displayName: options.displayName ?? "",
  });
}

/** A pipeline that starts with a sleep (see Pipeline.sleep); its result is none, or the initial arguments it is given. */
export function sleep(duration: number | { until: Date }, options: WaitOptions = {}): Pipeline<undefined> {
  return Pipeline.ofStep(create(StepSchema, { kind: { case: "wait", value: sleepWait(duration, options) } }));
}

/** A pipeline that starts by waiting for a signal (see Pipeline.waitForSignal). */
export function waitForSignal<T = unknown>(name: string, options: TimedWaitOptions = {}): Pipeline<T> {
  return Pipeline.ofStep(create(StepSchema, { kind: { case: "wait", value: namedWait("signal", name, options) } }));
}

/** A pipeline that starts by waiting for an event (see Pipeline.waitForEvent). */
export function waitForEvent<T = unknown>(name: string, options: TimedWaitOptions = {}): Pipeline<T> {
  return Pipeline.ofStep(create(StepSchema, { kind: { case: "wait", value: namedWait("event", name, options) } }));
}

/**
 * Runs pipelines in parallel; the result is the list of their results in
 * declaration order.
 *
 * @example
 *   inParallel([multiply.send(3, 2), multiply.send(4, 5)], { maxParallelism: 1 })
 */
export function inParallel<const T extends readonly Pipeline<any>[]>(
  branches: T,
  options: GroupOptions = {},
): Pipeline<{ -readonly [K in keyof T]: ResultOf<T[K]> }> {
  const group = create(GroupSchema, {
    branches: branches.map((b) => b.unchecked()),
    maxParallelism: options.maxParallelism ?? 0,
    numStages: options.numStages ?? 0,
    returnExceptions: options.returnExceptions ?? false,
  });
  return Pipeline.ofStep(create(StepSchema, { kind: { case: "group", value: group } }));
}
