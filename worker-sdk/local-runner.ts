// The local runner: executes a pipeline in this process by plain recursion
// over its steps, calling task functions directly. No server, no database.
//
// It is two things at once: the user's tool to develop and debug a pipeline
// before deploying it, and the executable reference for Pipewright's
// semantics. The orchestrator (server/core) is written very differently
// (an event-driven state machine persisted step by step); the differential
// property tests check that both give the same outcome and final state.

import { create } from "@bufbuild/protobuf";
import type { Dag, Group, Pipeline as PipelineMessage, TaskCall, TaskError, Value } from "@pipewright/protocol";
import { childScopePath, countTasks, ErrorTypes, formatViolations, optionalMs, ParentResults, validatePipeline } from "@pipewright/protocol";
import { decodeError, decodeValue, encodeState, encodeValue, isPlainObject, type RemoteError } from "@pipewright/protocol";
import { TaskErrorSchema, ValueListSchema, ValueMapSchema, ValueSchema } from "@pipewright/protocol";
import { Pipeline, type Job } from "@pipewright/client";
import { invokeTask } from "./invoke-task.js";
import { LocalWaitSteps, type LocalArrival } from "./local-waits.js";
import type { TaskDefinition } from "./task.js";
import type { VirtualClock } from "./virtual-clock.js";

export type { LocalArrival } from "./local-waits.js";

export interface LocalRunOptions {
  /** The task definitions, by name. */
  tasks: Iterable<TaskDefinition<any, any>>;
  /** Deepest child-pipeline nesting (default 10,000, as the server). */
  maxDepth?: number;
  /** Most task steps in the run (default 500,000, as the server). */
  maxTasks?: number;
  /** Waits out retry delays and a delayed start; default real timers. `() => Promise.resolve()` skips them. */
  sleep?: (ms: number) => Promise<void>;
  /** The clock a `startAt` is measured against (ms since the epoch); default Date.now. With `sleep`, a test's clock. */
  now?: () => number;
  /** Delayed start, as SubmitOptions.startDelayMs: the run waits this long (through `sleep`) before its first step. */
  startDelayMs?: number;
  /** Delayed start, as SubmitOptions.startAt: the run waits until then (through `sleep`); a time past starts it at once. */
  startAt?: Date;
  /**
   * A VirtualClock (./virtual-clock.ts): sleeps, waits' timeouts, retry delays
   * and a delayed start pass in no time, in the order real time would pass
   * them. Takes the place of `sleep` and `now`.
   */
  clock?: VirtualClock;
  /** Signals sent to the run (as client.signal), each `atMs` after it starts (0: before its first step, so kept for the first wait of its name). */
  signals?: LocalArrival[];
  /** Events published in the run's namespace, each `atMs` after it starts: they end the waits for their name begun by then, and are not kept. */
  events?: LocalArrival[];
}

/** How a local run ended, with values decoded. */
export type LocalOutcome = { ok: true; value: unknown; state: unknown } | { ok: false; error: RemoteError; state: unknown };

interface Flow {
  error?: TaskError;
  args: Value[];
  kwargs: Record<string, Value>;
  state?: Value;
}

/**
 * Runs a pipeline locally and returns its outcome.
 *
 * @example
 *   const out = await runLocally(multiply.send(3, 2).continueWith(divide, 2), { tasks: [multiply, divide] });
 *   // out = { ok: true, value: 3, state: null }
 */
export async function runLocally(pipeline: Pipeline<any> | PipelineMessage, options: LocalRunOptions): Promise<LocalOutcome> {
  const run = runOnce(pipeline, options);
  return options.clock ? options.clock.drive(run) : run;
}

async function runOnce(pipeline: Pipeline<any> | PipelineMessage, options: LocalRunOptions): Promise<LocalOutcome> {
  const runner = new LocalRunner(options);
  const message = pipeline instanceof Pipeline ? pipeline.toProto() : pipeline;
  const problems = validatePipeline(message);
  if (problems.length) throw new Error(`invalid pipeline: ${formatViolations(problems)}`);
  runner.taskCount = countTasks(message);
  const wait = startWaitMs(options);
  if (wait > 0) await runner.sleepFor(wait);
  runner.waitSteps.scheduleArrivals(options.signals ?? [], options.events ?? []);
  const flow = await runner.pipeline(message, { args: [], kwargs: {} }, "", 0);
  const state = flow.state ? decodeValue(flow.state) : null;
  return flow.error ? { ok: false, error: decodeError(flow.error), state } : { ok: true, value: decodeValue(single(flow)), state };
}

/** How long a local run waits before it starts (its delayed start, as the server counts it). */
function startWaitMs(o: Pick<LocalRunOptions, "startAt" | "startDelayMs" | "now" | "clock">): number {
  if (o.startAt && o.startDelayMs !== undefined) throw new Error("give startAt or startDelayMs, not both");
  if (o.startDelayMs !== undefined) return Math.max(0, o.startDelayMs);
  return o.startAt ? Math.max(0, o.startAt.getTime() - (o.clock?.now ?? o.now ?? Date.now)()) : 0;
}

class LocalRunner {
  private readonly tasks = new Map<string, TaskDefinition<any, any>>();
  private readonly maxDepth: number;
  private readonly maxTasks: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  /** Wait steps, and the signals and events that end them. */
  readonly waitSteps: LocalWaitSteps;
  taskCount = 0;

  /** Waits through the runner's `sleep` (real timers, or a test's clock). */
  sleepFor(ms: number): Promise<void> {
    return this.sleep(ms);
  }

  constructor(options: LocalRunOptions) {
    for (const t of options.tasks) this.tasks.set(t.name, t);
    this.maxDepth = options.maxDepth ?? 10_000;
    this.maxTasks = options.maxTasks ?? 500_000;
    this.sleep = options.clock?.sleep ?? options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.now = options.clock?.now ?? options.now ?? Date.now;
    this.waitSteps = new LocalWaitSteps(this.sleep, this.now, options.clock);
  }

  async pipeline(p: PipelineMessage, incoming: Flow, path: string, depth: number): Promise<Flow> {
    let flow: Flow = {
      args: [...incoming.args, ...p.initialArgs],
      kwargs: { ...incoming.kwargs, ...p.initialKwargs },
      state: p.initialState ?? incoming.state,
    };
    const at = (seg: string) => (path ? `${path}.${seg}` : seg);
    for (const [i, step] of p.steps.entries()) {
      const kind = step.kind;
      if (kind.case === "exceptionally") {
        if (flow.error)
          flow = await this.task(
            kind.value,
            { args: [errorAsValue(flow.error), ...kind.value.args], kwargs: { ...kind.value.kwargs }, state: flow.state },
            at(`steps[${i}]`),
            depth,
          );
        continue;
      }
      if (flow.error) continue;
      switch (kind.case) {
        case "task":
          flow = await this.task(kind.value, entryInput(kind.value, flow), at(`steps[${i}]`), depth);
          break;
        case "group":
          flow = await this.group(kind.value, flow, at(`steps[${i}]`), depth);
          break;
        case "dag":
          flow = await this.dag(kind.value, flow, at(`steps[${i}]`), depth);
          break;
        case "wait":
          flow = await this.waitSteps.run(kind.value, flow, at(`steps[${i}]`));
          break;
      }
    }
    if (p.finally) {
      const fin = await this.task(p.finally, { args: [...p.finally.args], kwargs: { ...p.finally.kwargs }, state: flow.state }, at("finally"), depth);
      flow = fin.error ? { error: fin.error, args: [], kwargs: {}, state: flow.state } : { ...flow, state: fin.state };
    }
    return flow;
  }

  /** One task step, with its retries and its child pipeline if it returns one. */
  async task(
    call: TaskCall,
    input: Flow & { parentResults?: Record<string, Value> },
    path: string,
    depth: number,
    mode = ParentResults.UNSPECIFIED,
  ): Promise<Flow> {
    const def = this.tasks.get(call.task);
    for (let attempt = 1; ; attempt++) {
      const result = def
        ? await invokeTask(def, {
            args: input.args,
            kwargs: input.kwargs,
            state: input.state,
            parentResults: input.parentResults,
            parentResultsMode: mode,
            runId: "local",
            stepId: 0,
            retryNumber: attempt,
            attempt,
            path,
            signal: new AbortController().signal,
            heartbeat: () => {},
          })
        : {
            outcome: {
              case: "error" as const,
              value: makeError("UnknownTask", `no task named ${JSON.stringify(call.task)} is registered with the local runner`),
            },
          };
      const outcome = result.outcome;
      if (outcome.case === "value") return { args: [outcome.value], kwargs: {}, state: result.state ?? input.state };
      let error: TaskError;
      if (outcome.case === "pipeline") {
        const child = outcome.value;
        const problems = validatePipeline(child, "child");
        if (problems.length) error = makeError("InvalidPipeline", `the returned pipeline is invalid: ${formatViolations(problems)}`, path);
        else if (depth + 1 > this.maxDepth)
          error = makeError("LimitExceeded", `child pipeline nesting would exceed the limit of ${this.maxDepth} levels`, path);
        else if (this.taskCount + countTasks(child) > this.maxTasks) {
          error = makeError("LimitExceeded", `the run would hold ${this.taskCount + countTasks(child)} tasks, over the limit of ${this.maxTasks}`, path);
        } else {
          this.taskCount += countTasks(child);
          const inherited = child.inline ? (result.state ?? input.state) : undefined;
          const out = await this.pipeline(child, { args: [], kwargs: {}, state: inherited }, childScopePath(path, depth + 1), depth + 1);
          const own = child.inline ? out.state : (result.state ?? input.state);
          return out.error ? { error: out.error, args: [], kwargs: {}, state: own } : { args: [single(out)], kwargs: {}, state: own };
        }
      } else {
        error = outcome.value;
      }
      if (!error.origin) error = { ...error, origin: path };
      const delay = retryDelayFor(call, attempt, error);
      if (delay === undefined) return { error, args: [], kwargs: {}, state: input.state };
      await this.sleep(delay);
    }
  }

  async group(g: Group, flow: Flow, path: string, depth: number): Promise<Flow> {
    const n = g.branches.length;
    const outcomes: Flow[] = new Array(n);
    const limit = g.maxParallelism > 0 ? g.maxParallelism : n;
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const j = next++;
        outcomes[j] = await this.pipeline(g.branches[j], { args: flow.args, kwargs: flow.kwargs, state: flow.state }, `${path}.group.branches[${j}]`, depth);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
    const state = mergeStates(
      flow.state,
      outcomes.map((o) => o.state),
    );
    const failed = outcomes.filter((o) => o.error);
    if (failed.length && !g.returnExceptions) {
      return {
        error: aggregate(
          failed.map((o) => o.error!),
          n,
          "branches",
          path,
        ),
        args: [],
        kwargs: {},
        state,
      };
    }
    const items = outcomes.map((o) => (o.error ? errorAsValue(o.error) : single(o)));
    return { args: [create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items }) } })], kwargs: {}, state };
  }

  async dag(d: Dag, flow: Flow, path: string, depth: number): Promise<Flow> {
    const nodes = d.nodes;
    const results = new Map<string, Flow>();
    const status = new Map<string, "ok" | "failed" | "skipped">();
    const running = new Map<string, Promise<void>>();
    const position = new Map(nodes.map((n, k) => [n.id, k]));
    const start = (k: number): Promise<void> => {
      const node = nodes[k];
      const existing = running.get(node.id);
      if (existing) return existing;
      const p = (async () => {
        await Promise.all(node.dependsOn.map((dep) => start(position.get(dep)!)));
        if (node.dependsOn.some((dep) => status.get(dep) !== "ok")) {
          status.set(node.id, "skipped");
          return;
        }
        const call = node.task!;
        const mode = node.parentResults || ParentResults.AUTO;
        const input: Flow & { parentResults?: Record<string, Value> } =
          node.dependsOn.length === 0
            ? entryInput(call, flow)
            : {
                args: call.args.map((a, i) => {
                  const from = node.parentArguments.find((pa) => pa.position === i);
                  return from ? single(results.get(from.node)!) : a;
                }),
                kwargs: { ...call.kwargs },
                state: flow.state,
                parentResults: mode === ParentResults.NEVER ? undefined : Object.fromEntries(node.dependsOn.map((dep) => [dep, single(results.get(dep)!)])),
              };
        const out = await this.task(call, input, `${path}.dag.nodes[${k}]`, depth, mode);
        results.set(node.id, out);
        status.set(node.id, out.error ? "failed" : "ok");
      })();
      running.set(node.id, p);
      return p;
    };
    await Promise.all(nodes.map((_, k) => start(k)));
    const ran = nodes.filter((n) => status.get(n.id) === "ok");
    const state = mergeStates(
      flow.state,
      ran.map((n) => results.get(n.id)!.state),
    );
    const failed = nodes.filter((n) => status.get(n.id) === "failed");
    if (failed.length)
      return {
        error: aggregate(
          failed.map((n) => results.get(n.id)!.error!),
          nodes.length,
          "nodes",
          path,
        ),
        args: [],
        kwargs: {},
        state,
      };
    if (d.outputs.length) {
      const items = d.outputs.map((id) => single(results.get(id)!));
      return { args: [create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items }) } })], kwargs: {}, state };
    }
    const dependedOn = new Set(nodes.flatMap((n) => n.dependsOn));
    const entries = Object.fromEntries(nodes.filter((n) => !dependedOn.has(n.id)).map((n) => [n.id, single(results.get(n.id)!)]));
    return { args: [create(ValueSchema, { kind: { case: "map", value: create(ValueMapSchema, { entries }) } })], kwargs: {}, state };
  }
}

function entryInput(call: TaskCall, flow: Flow): Flow {
  return { args: call.ignoreInput ? [...call.args] : [...flow.args, ...call.args], kwargs: { ...flow.kwargs, ...call.kwargs }, state: flow.state };
}

function single(flow: Flow): Value {
  if (flow.args.length === 1) return flow.args[0];
  if (flow.args.length === 0) return create(ValueSchema, {});
  return create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items: flow.args }) } });
}

function errorAsValue(error: TaskError): Value {
  return create(ValueSchema, { kind: { case: "error", value: error } });
}

function makeError(type: string, message: string, origin = "", causes: TaskError[] = []): TaskError {
  return create(TaskErrorSchema, { type: `pipewright.${type}`, message, origin, causes });
}

function aggregate(causes: TaskError[], total: number, what: string, origin: string): TaskError {
  const flat: TaskError[] = [];
  for (const c of causes) {
    if (c.type === ErrorTypes.aggregate && c.causes.length) for (const cause of c.causes) flat.push(cause);
    else flat.push(c);
  }
  const list = flat.map((c) => `${c.origin || "?"}: ${c.type}: ${c.message}`).join("; ");
  return makeError("AggregateError", `${causes.length} of ${total} ${what} failed: ${list}`, origin, flat);
}

const NOT_RETRIED = new Set<string>([ErrorTypes.cancelled, ErrorTypes.limitExceeded, ErrorTypes.invalidPipeline, ErrorTypes.aggregate]);

function retryDelayFor(call: TaskCall, attempt: number, error: TaskError): number | undefined {
  const r = call.options?.retry;
  const max = r?.maxAttempts || 1;
  if (error.terminal || NOT_RETRIED.has(error.type) || attempt >= max) return undefined;
  if (r && r.retryOn.length && !r.retryOn.includes(error.type)) return undefined;
  const delay = (optionalMs(r?.initialDelay) ?? 1000) * Math.pow(r?.backoffFactor || 2, attempt - 1);
  return Math.min(delay, optionalMs(r?.maxDelay) ?? 300_000);
}

/**
 * Branch states come back together key by key (see README, "State"): for
 * object states, each branch's changes against the starting state apply in
 * declaration order (later wins); otherwise the last branch that changed the
 * state wins. Written over decoded values, independently of the server's.
 */
function mergeStates(base: Value | undefined, states: (Value | undefined)[]): Value | undefined {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const b0 = base ? decodeValue(base) : undefined;
  const changed = states.map((s) => (s ? decodeValue(s) : undefined)).filter((s) => !same(s, b0));
  if (changed.length === 0) return base;
  if ((b0 === undefined || isPlainObject(b0)) && changed.every(isPlainObject)) {
    const start = (b0 ?? {}) as Record<string, unknown>;
    const merged: Record<string, unknown> = { ...start };
    for (const s of changed as Record<string, unknown>[]) {
      for (const [k, v] of Object.entries(s)) if (!same(v, start[k])) merged[k] = v;
      for (const k of Object.keys(start)) if (!(k in s)) delete merged[k];
    }
    return encodeState(merged);
  }
  const last = changed[changed.length - 1];
  return isPlainObject(last) ? encodeState(last) : encodeValue(last);
}

/**
 * Runs a job locally, task by task, and records its status and result on it
 * (the job's test runner).
 *
 * @example
 *   const j = basicPipeline(5, 6);
 *   await runJobLocally(j, { tasks });
 *   assert(j.status === "completed");
 */
export async function runJobLocally<R>(job: Job<R>, options: LocalRunOptions): Promise<R> {
  return job.follow(
    runLocally(job.pipeline, options).then((out) => {
      if (out.ok) return out.value as R;
      throw out.error;
    }),
  );
}
