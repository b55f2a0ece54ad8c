// Random pipelines for the differential property tests: a fast-check
// arbitrary of plain "specs" (readable when a case fails), a builder from spec
// to Pipeline, and the deterministic tasks they call. Tasks fail by a seeded
// rule (a hash of their inputs), some fail only on their first try, some
// return child pipelines, some change the state.

import fc from "fast-check";
import { inParallel, Pipeline, sleep, waitForEvent, waitForSignal } from "../../client/pipeline-builder.js";
import { NodeRef, Workflow } from "../../client/workflow.js";
import type { RemoteError } from "../../proto/runtime/values.js";
import { statefulTask, task, type TaskDefinition } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";

// ---- specs -------------------------------------------------------------------

export type CallSpec = { kind: "op" | "flaky" | "state" | "child" | "childInline"; k: number; retries: number };
export type StepSpec =
  | { step: "task"; call: CallSpec }
  | { step: "exceptionally"; k: number }
  | { step: "group"; branches: PipelineSpec[]; maxParallelism: number; numStages: number; returnExceptions: boolean }
  | { step: "dag"; nodes: { call: CallSpec; deps: number[] }[]; outputs: number[] }
  /**
   * A wait whose outcome does not hang on timing: a sleep (passes the result on), a wait for
   * a signal sent when the run starts (kept until the wait is reached), or a signal or event
   * wait that nothing ends (it times out).
   */
  | { step: "wait"; kind: "sleep" | "signal" | "timeout"; k: number };
export interface PipelineSpec {
  steps: StepSpec[];
  finallyK?: number;
  initial?: { args: number[]; state?: Record<string, number> | number };
}

const callSpec: fc.Arbitrary<CallSpec> = fc.record({
  kind: fc.constantFrom("op", "op", "op", "op", "flaky", "state", "state", "child", "childInline"),
  k: fc.integer({ min: 0, max: 999 }),
  retries: fc.integer({ min: 1, max: 3 }),
});

const dagSpec = fc.array(fc.record({ call: callSpec, deps: fc.array(fc.nat(), { maxLength: 3 }) }), { minLength: 1, maxLength: 6 }).chain((nodes) =>
  fc.record({
    // Dependencies only on earlier nodes: always acyclic.
    nodes: fc.constant(nodes.map((n, i) => ({ call: n.call, deps: i === 0 ? [] : [...new Set(n.deps.map((d) => d % i))] }))),
    outputs: fc.array(fc.nat({ max: nodes.length - 1 }), { maxLength: 2 }),
  }),
);

const waitSpec = fc.record({
  step: fc.constant("wait" as const),
  kind: fc.constantFrom("sleep" as const, "signal" as const, "timeout" as const),
  k: fc.nat(999),
});

/** `waits`: wait steps among the steps (their signals come from buildPipeline's `arrivals`). */
export function pipelineSpec(options: { dags: boolean; waits?: boolean }): fc.Arbitrary<PipelineSpec> {
  const { pipeline } = fc.letrec<{ pipeline: PipelineSpec; step: StepSpec }>((tie) => ({
    step: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      { weight: 6, arbitrary: callSpec.map((call) => ({ step: "task" as const, call })) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 999 }).map((k) => ({ step: "exceptionally" as const, k })) },
      {
        weight: 2,
        arbitrary: fc.record({
          step: fc.constant("group" as const),
          branches: fc.array(tie("pipeline") as fc.Arbitrary<PipelineSpec>, { maxLength: 4 }),
          maxParallelism: fc.integer({ min: 0, max: 3 }),
          numStages: fc.integer({ min: 0, max: 2 }),
          returnExceptions: fc.boolean(),
        }),
      },
      ...(options.dags ? [{ weight: 1, arbitrary: dagSpec.map((d) => ({ step: "dag" as const, ...d })) }] : []),
      ...(options.waits ? [{ weight: 2, arbitrary: waitSpec }] : []),
    ),
    pipeline: fc.record(
      {
        steps: fc.array(tie("step") as fc.Arbitrary<StepSpec>, { minLength: 1, maxLength: 4 }),
        finallyK: fc.integer({ min: 0, max: 999 }),
        initial: fc.record({
          args: fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 2 }),
          state: fc.option(fc.oneof(fc.dictionary(fc.constantFrom("a", "b", "c"), fc.nat(9)), fc.nat(9)), { nil: undefined }),
        }),
      },
      { requiredKeys: ["steps"] },
    ),
  }));
  return pipeline.map(fixStages);
}

/** num_stages may not exceed the branch count. */
function fixStages(p: PipelineSpec): PipelineSpec {
  return {
    ...p,
    steps: p.steps.map((s) => (s.step === "group" ? { ...s, numStages: Math.min(s.numStages, s.branches.length), branches: s.branches.map(fixStages) } : s)),
  };
}

// ---- tasks -------------------------------------------------------------------

/** FNV-1a over the JSON of the inputs: the deterministic "work" every task does. */
export function digest(...parts: unknown[]): number {
  const text = JSON.stringify(parts);
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 1000;
}

class Seeded extends Error {
  override name = "Seeded";
}
class Transient extends Error {
  override name = "Transient";
}

/** Fails (by a seeded rule) for about one input in eight. */
const op = task("d_op", (...args: unknown[]) => {
  const k = args.at(-1) as number;
  const h = digest(args);
  if ((h + k) % 8 === 0) throw new Seeded(`seeded failure ${h}`);
  return h;
});

/** Fails on its first try only: succeeds when retried. */
const flaky = task("d_flaky", (...args: unknown[]) => {
  if (currentTask().retryNumber === 1) throw new Transient("first try fails");
  return digest(args, "flaky");
});

/** Sets a state key derived from its inputs. */
const stateful = statefulTask("d_state", (state: unknown, ...args: unknown[]) => {
  const h = digest(args, state);
  const key = `s${h % 3}`;
  const next = state !== null && typeof state === "object" && !Array.isArray(state) ? { ...(state as object), [key]: h } : { [key]: h };
  return [next, h] as const;
});

/** Handles an error: a value, or (for some inputs) another error. */
const handle = task("d_handle", (error: RemoteError, k: number, ...rest: unknown[]) => {
  const h = digest(error.type, error.message, k, rest);
  if (h % 5 === 0) throw new Seeded(`handler refused ${error.type}`);
  return h;
});

/** Finally: records itself in the state; fails for some inputs. */
const fin = statefulTask("d_finally", (state: unknown, k: number) => {
  if (k % 11 === 0) throw new Seeded(`finally ${k} failed`);
  const next = state !== null && typeof state === "object" && !Array.isArray(state) ? { ...(state as object), fin: k } : { fin: k, was: state };
  return [next, null] as const;
});

/** Returns a small child pipeline, chosen by its inputs. */
const child: TaskDefinition<unknown[], unknown> = task("d_child", (...args: unknown[]) => childPipeline(digest(args), false));
const childInline: TaskDefinition<unknown[], unknown> = task("d_child_inline", (...args: unknown[]) => childPipeline(digest(args), true));

function childPipeline(h: number, inline: boolean): Pipeline<unknown> {
  const p =
    h % 3 === 0
      ? inParallel([op.send(h, 1), stateful.send(h)]).continueWith(op, 2)
      : h % 3 === 1
        ? stateful.send(h).continueWith(op, 3).exceptionally(handle, 4)
        : op.send(h, 5).continueWith(stateful);
  return inline ? p.inline() : p;
}

export const randomTasks: TaskDefinition<any, any>[] = [op, flaky, stateful, handle, fin, child, childInline];

// ---- spec -> pipeline ------------------------------------------------------------

function callOf(c: CallSpec): Pipeline<unknown> {
  const retry = { retry: { maxAttempts: c.retries, initialDelayMs: 1, backoffFactor: 1 } };
  switch (c.kind) {
    case "op":
      return op.withOptions(retry).partial(c.k);
    case "flaky":
      return flaky.withOptions(retry).partial(c.k);
    case "state":
      return stateful.partial(c.k);
    case "child":
      return child.partial(c.k);
    case "childInline":
      return childInline.partial(c.k);
  }
}

/** The signals a built pipeline's waits expect, each sent once when the run starts (plus a repeat of one, by the same signal id). */
export interface Arrivals {
  signals: { name: string; payload: unknown; id: string }[];
}

export function buildPipeline(spec: PipelineSpec, root = true, arrivals: Arrivals = { signals: [] }): Pipeline<unknown> {
  let p: Pipeline<unknown> | undefined;
  const append = (next: Pipeline<unknown>) => (p = p ? p.continueWith(next) : next);
  for (const s of spec.steps) {
    switch (s.step) {
      case "task":
        append(callOf(s.call));
        break;
      case "exceptionally":
        // An exceptionally step cannot open a pipeline in the builder; lead with a cheap op.
        if (!p) append(op.partial(s.k));
        p = p!.exceptionally(handle, s.k);
        break;
      case "group":
        append(
          inParallel(
            s.branches.map((b) => buildPipeline(b, false, arrivals)),
            { maxParallelism: s.maxParallelism, numStages: s.numStages, returnExceptions: s.returnExceptions },
          ),
        );
        break;
      case "dag":
        append(buildDag(s));
        break;
      case "wait": {
        const n = arrivals.signals.length;
        if (s.kind === "sleep") p = p ? p.sleep(10 + s.k) : sleep(10 + s.k);
        else if (s.kind === "signal") {
          const name = `s${n}`;
          arrivals.signals.push({ name, payload: { k: s.k, n }, id: `id-${n}` });
          if (s.k % 3 === 0) arrivals.signals.push({ name, payload: "a repeat: dropped", id: `id-${n}` });
          p = p ? p.waitForSignal(name) : waitForSignal(name);
        } else {
          arrivals.signals.push({ name: `unused-${n}`, payload: null, id: `unused-${n}` }); // a kept signal no wait takes
          const options = { timeoutMs: 50 + s.k };
          p =
            s.k % 2
              ? p
                ? p.waitForSignal(`never-${n}`, options)
                : waitForSignal(`never-${n}`, options)
              : p
                ? p.waitForEvent(`never-${n}`, options)
                : waitForEvent(`never-${n}`, options);
        }
        break;
      }
    }
  }
  if (spec.finallyK !== undefined) p = p!.finallyDo(fin, spec.finallyK);
  if (root && spec.initial) p = p!.withInitial({ args: spec.initial.args, state: spec.initial.state });
  return p!;
}

/** A DAG spec as a Workflow step: nodes call the same random tasks; parents' results reach them as arguments or as the parent map. */
function buildDag(s: Extract<StepSpec, { step: "dag" }>): Pipeline<unknown> {
  const wf = new Workflow();
  const refs: NodeRef[] = s.nodes.map((n, i) => {
    const c = n.call;
    const task = c.kind === "op" ? op : c.kind === "flaky" ? flaky : c.kind === "state" ? stateful : c.kind === "child" ? child : childInline;
    const deps = n.deps.map((d) => `n${d}`);
    // Odd k: the first parent's result is the first argument; even k: parents come as the map ("always").
    const byArgument = c.k % 2 === 1 && deps.length > 0;
    return wf.add(task.withOptions({ retry: { maxAttempts: c.retries, initialDelayMs: 1, backoffFactor: 1 } }), {
      id: `n${i}`,
      args: byArgument ? [null, c.k] : [c.k],
      dependsOn: deps.map((id) => new NodeRef(id)),
      parentResults: byArgument ? "never" : "always",
      parentArguments: byArgument ? [{ position: 0, node: new NodeRef(deps[0]) }] : [],
    });
  });
  return wf.toPipeline(s.outputs.map((o) => refs[o]));
}

/** A random DAG of `n` cheap nodes (each depends on up to 3 earlier ones), and the sum of its sinks. */
export function randomDag(n: number, seed: number): Pipeline<number> {
  let a = seed >>> 0;
  const rand = () => (a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296;
  const wf = new Workflow(`random-dag-${n}`);
  const refs: NodeRef<number>[] = [];
  for (let i = 0; i < n; i++) {
    const deps = i === 0 ? [] : [...new Set(Array.from({ length: 1 + Math.floor(rand() * 3) }, () => refs[Math.floor(rand() * i)]))];
    refs.push(wf.add(dagSum, { id: `n${i}`, args: [i], dependsOn: deps, parentResults: "always" }));
  }
  return (wf.toPipeline() as Pipeline<Record<string, number>>).continueWith(sinkTotal);
}

/** A DAG node: its own number plus its parents' results, modulo 1,000,003. */
export const dagSum = task("dag_sum", (parents: Record<string, number>, own: number) => Object.values(parents).reduce((s, v) => s + v, own) % 1_000_003);
export const sinkTotal = task("sink_total", (sinks: Record<string, number>) => Object.values(sinks).reduce((s, v) => s + v, 0));
randomTasks.push(dagSum, sinkTotal);
