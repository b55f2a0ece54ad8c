// Pipelines with the outcome the semantics require, shared by the core tests
// (state machine in process, local runner) and the end-to-end tests (real
// server, real workers).

import { inParallel, type Pipeline } from "../../client/pipeline-builder.js";
import { chain, chord, chunks, group, starmap } from "../../client/canvas.js";
import { job } from "../../client/job.js";
import { Workflow } from "../../client/workflow.js";
import * as ex from "../../examples/tasks.js";
import * as t from "./test-tasks.js";

export type Expected = { ok: true; value: unknown; state?: unknown } | { ok: false; type: string; message?: string; origin?: string; state?: unknown };

export interface SemanticCase {
  name: string;
  pipeline: () => Pipeline<any>;
  expect: Expected;
}

const retry = (maxAttempts: number, extra: object = {}) => ({ retry: { maxAttempts, initialDelayMs: 5, ...extra } });

export const semanticCases: SemanticCase[] = [
  {
    name: "continuation passes the result as the first argument",
    pipeline: () => ex.multiply.send(3, 2).continueWith(ex.divide, 2),
    expect: { ok: true, value: 3 },
  },
  { name: "leading then own arguments", pipeline: () => t.echo.send(1).continueWith(t.echo, 2, 3), expect: { ok: true, value: [[1], 2, 3] } },
  {
    name: "group results in declaration order",
    pipeline: () => inParallel([t.echo.send(1), t.echo.send(2), t.echo.send(3)]),
    expect: { ok: true, value: [[1], [2], [3]] },
  },
  { name: "empty group gives an empty list", pipeline: () => inParallel([]).continueWith(t.echo), expect: { ok: true, value: [[]] } },
  {
    name: "nested groups (the reference's nested example)",
    pipeline: () =>
      inParallel([
        ex.multiply.send(3, 2).continueWith(ex.divide, 2),
        inParallel([ex.multiply.send(4, 5), ex.multiply.send(3, 4)]).continueWith(ex.average),
      ]).continueWith(ex.average),
    expect: { ok: true, value: 9.5 },
  },
  {
    name: "a group after a step gets its result in every branch",
    pipeline: () => ex.multiply.send(2, 3).continueWith(inParallel([ex.add.partial(1), ex.add.partial(2)])),
    expect: { ok: true, value: [7, 8] },
  },
  {
    name: "max_parallelism keeps the order of results",
    pipeline: () =>
      inParallel(
        [0, 1, 2, 3, 4, 5].map((i) => t.probe.send(i, 5)),
        { maxParallelism: 2 },
      ),
    expect: { ok: true, value: [0, 1, 2, 3, 4, 5] },
  },
  {
    name: "num_stages gives the same result",
    pipeline: () =>
      inParallel(
        Array.from({ length: 10 }, (_, i) => t.echo.send(i)),
        { numStages: 3 },
      ),
    expect: { ok: true, value: Array.from({ length: 10 }, (_, i) => [i]) },
  },
  {
    name: "state flows along continuations (the reference's state example)",
    pipeline: () => ex.multiplyWithState.send(3, 2).continueWith(ex.subtract, 1).continueWith(ex.addState),
    expect: { ok: true, value: 15, state: 10 },
  },
  {
    name: "object branch states merge key by key, later branch wins",
    pipeline: () =>
      inParallel([t.setKey.send("a", 1), t.setKey.send("b", 2), t.setKey.send("a", 3)])
        .continueWith(t.getState)
        .withInitial({ state: { a: 0, b: 0, keep: true } }),
    expect: { ok: true, value: { a: 3, b: 2, keep: true }, state: { a: 3, b: 2, keep: true } },
  },
  {
    name: "non-object branch states: the last branch that changed it wins",
    pipeline: () =>
      inParallel([t.setState.send(5), t.echo.send(1), t.setState.send(7), t.echo.send(2)])
        .continueWith(t.getState)
        .withInitial({ state: 0 }),
    expect: { ok: true, value: 7, state: 7 },
  },
  {
    name: "exceptionally is skipped while all is well",
    pipeline: () => ex.multiply.send(2, 2).exceptionally(ex.handleError, 0),
    expect: { ok: true, value: 4 },
  },
  {
    name: "exceptionally receives the error and resumes",
    pipeline: () => ex.fail.send("boom").exceptionally(ex.handleError, 42).continueWith(ex.add, 1),
    expect: { ok: true, value: 43 },
  },
  {
    name: "steps are skipped while an error flows, to the next exceptionally",
    pipeline: () => ex.fail.send("a").continueWith(ex.add, 1).continueWith(ex.add, 1).exceptionally(ex.handleError, 5),
    expect: { ok: true, value: 5 },
  },
  {
    name: "an exceptionally step's own error flows on to the next one",
    pipeline: () => ex.fail.send("a").exceptionally(t.rethrowAs, "Second").continueWith(ex.add, 1).exceptionally(ex.handleError, 7),
    expect: { ok: true, value: -1 },
  },
  {
    name: "an unhandled error fails the pipeline",
    pipeline: () => ex.multiply.send(1, 1).continueWith(ex.fail as never),
    expect: { ok: false, type: "ValueError", message: "1", origin: "steps[1]" },
  },
  {
    name: "finally runs after success and keeps the result",
    pipeline: () => ex.multiply.send(2, 3).finallyDo(ex.cleanup),
    expect: { ok: true, value: 6, state: { cleaned: true } },
  },
  {
    name: "finally runs after failure and keeps the error",
    pipeline: () =>
      ex.fail
        .send("bad")
        .finallyDo(ex.cleanup)
        .withInitial({ state: { n: 1 } }),
    expect: { ok: false, type: "ValueError", message: "bad", state: { n: 1, cleaned: true } },
  },
  {
    name: "a failing finally's error wins",
    pipeline: () => ex.multiply.send(2, 3).finallyDo(t.failWith, "CleanupError", "cleanup broke", false),
    expect: { ok: false, type: "CleanupError", message: "cleanup broke" },
  },
  {
    name: "a failing branch fails the group with one error naming every failed branch",
    pipeline: () => inParallel([ex.fail.send("x"), t.echo.send(1), ex.fail.send("y")]),
    expect: {
      ok: false,
      type: "pipewright.AggregateError",
      message: "2 of 3 branches failed: steps[0].group.branches[0].steps[0]: ValueError: x; steps[0].group.branches[2].steps[0]: ValueError: y",
    },
  },
  {
    name: "nested group failures are flattened into one aggregate",
    pipeline: () => inParallel([inParallel([ex.fail.send("x"), ex.fail.send("y")]), ex.fail.send("z")]),
    expect: {
      ok: false,
      type: "pipewright.AggregateError",
      message:
        "2 of 2 branches failed: steps[0].group.branches[0].steps[0].group.branches[0].steps[0]: ValueError: x; steps[0].group.branches[0].steps[0].group.branches[1].steps[0]: ValueError: y; steps[0].group.branches[1].steps[0]: ValueError: z",
    },
  },
  {
    name: "return_exceptions puts errors in the result list",
    pipeline: () => inParallel([ex.fail.send("x"), t.echo.send(1)], { returnExceptions: true }),
    expect: { ok: true, value: [{ type: "ValueError", message: "x", origin: "steps[0].group.branches[0].steps[0]", details: null, causes: [] }, [1]] },
  },
  {
    name: "initial args reach the entry task of every branch",
    pipeline: () => inParallel([ex.multiply.partial(1), ex.multiply.partial(2)]).withInitial({ args: [2] }),
    expect: { ok: true, value: [2, 4] },
  },
  {
    name: "initial kwargs reach entry tasks only",
    pipeline: () => inParallel([t.kwargsOf.send(), t.kwargsOf.send().continueWith(t.kwargsOf)]).withInitial({ kwargs: { a: 1 } }),
    expect: { ok: true, value: [{ a: 1 }, {}] },
  },
  {
    name: "initial state reaches the tasks",
    pipeline: () => t.getState.send().withInitial({ state: { x: 1 } }),
    expect: { ok: true, value: { x: 1 }, state: { x: 1 } },
  },
  { name: "composition: a task returns a pipeline", pipeline: () => ex.multiplyAndSubtract.send(3, 2, 1), expect: { ok: true, value: 5 } },
  { name: "conditional execution: a task returns a value or a pipeline", pipeline: () => ex.addPositive.send(-3, 2), expect: { ok: true, value: 1 } },
  { name: "recursion through child pipelines", pipeline: () => ex.countTo.send(0, 20), expect: { ok: true, value: 20 } },
  {
    name: "a child pipeline's state is isolated",
    pipeline: () => t.childSetsKey.send("c", false).withInitial({ state: { p: 1 } }),
    expect: { ok: true, value: { c: "from-child" }, state: { p: 1 } },
  },
  {
    name: "an inline child pipeline shares the state",
    pipeline: () => t.childSetsKey.send("c", true).withInitial({ state: { p: 1 } }),
    expect: { ok: true, value: { p: 1, c: "from-child" }, state: { p: 1, c: "from-child" } },
  },
  { name: "a task may return a group", pipeline: () => t.fanOut.send(3).continueWith(t.echo), expect: { ok: true, value: [[[0], [1], [2]]] } },
  {
    name: "an error inside a child pipeline names where it happened",
    pipeline: () => ex.add.send(1, 1).continueWith(t.childFails as never),
    expect: { ok: false, type: "ValueError", message: "deep", origin: "steps[1].child.steps[0]" },
  },
  { name: "retries until success", pipeline: () => t.flaky.withOptions(retry(3)).send(3), expect: { ok: true, value: 3 } },
  { name: "gives up after max_attempts", pipeline: () => t.flaky.withOptions(retry(2)).send(3), expect: { ok: false, type: "Flaky", message: "try 2 failed" } },
  {
    name: "retry_on limits which errors retry",
    pipeline: () => t.flaky.withOptions(retry(5, { retryOn: ["Other"] })).send(3),
    expect: { ok: false, type: "Flaky", message: "try 1 failed" },
  },
  {
    name: "a terminal error never retries",
    pipeline: () => t.failWith.withOptions(retry(5)).send("X", "final", true),
    expect: { ok: false, type: "TerminalError", message: "final" },
  },

  // ---- DAG workflows ----
  {
    name: "dag: a diamond; the fan-in node gets its parents' results keyed by id",
    pipeline: () => {
      const wf = new Workflow("diamond");
      const a = wf.add(ex.multiply, { args: [2, 3] });
      const left = wf.add(t.collect, { id: "left", args: ["L"], dependsOn: [a] });
      const right = wf.add(t.collect, { id: "right", args: ["R"], dependsOn: [a] });
      wf.add(t.collect, { id: "join", dependsOn: [left, right] });
      return wf.toPipeline();
    },
    expect: {
      ok: true,
      value: {
        join: { parents: { left: { parents: { multiply: 6 }, rest: ["L"] }, right: { parents: { multiply: 6 }, rest: ["R"] } }, rest: [] },
      },
    },
  },
  {
    name: "dag: outputs give a list in the asked order",
    pipeline: () => {
      const wf = new Workflow();
      const a = wf.add(ex.multiply, { args: [2, 3] });
      const b = wf.add(ex.multiply, { args: [4, 5] });
      const c = wf.add(ex.add, {
        args: [null, null],
        dependsOn: [a, b],
        parentArguments: [
          { position: 0, node: a },
          { position: 1, node: b },
        ],
      });
      return wf.toPipeline([c, a]);
    },
    expect: { ok: true, value: [26, 6] },
  },
  {
    name: "dag: parent results always, auto, never",
    pipeline: () => {
      const wf = new Workflow();
      const a = wf.add(t.echo, { args: [1] });
      wf.add(t.echo, { id: "always", args: ["x"], dependsOn: [a], parentResults: "always" });
      wf.add(t.echo, { id: "auto", args: ["y"], dependsOn: [a] });
      wf.add(t.echo, { id: "never", args: ["z"], dependsOn: [a], parentResults: "never" });
      return wf.toPipeline();
    },
    expect: { ok: true, value: { always: [{ echo: [1] }, "x"], auto: ["y"], never: ["z"] } },
  },
  {
    name: "dag: a failed node stops its descendants, independent nodes go on, one error names it",
    pipeline: () => {
      const wf = new Workflow();
      const bad = wf.add(ex.fail, { args: ["broken"] });
      wf.add(t.echo, { id: "after-bad", dependsOn: [bad] });
      const good = wf.add(ex.multiply, { args: [3, 3] });
      wf.add(t.echo, { id: "after-good", dependsOn: [good], parentResults: "always" });
      return wf.toPipeline().exceptionally(ex.handleError, 99);
    },
    expect: { ok: true, value: -1 }, // handleError gives -1 for anything but a ValueError: here an AggregateError
  },
  {
    name: "dag: the aggregate error of a DAG names the failed node",
    pipeline: () => {
      const wf = new Workflow();
      wf.add(ex.fail, { id: "x", args: ["broken"] });
      wf.add(ex.multiply, { args: [3, 3] });
      return wf.toPipeline();
    },
    expect: { ok: false, type: "pipewright.AggregateError", message: "1 of 2 nodes failed: steps[0].dag.nodes[0]: ValueError: broken" },
  },
  {
    name: "dag: after a step, root nodes get its result",
    pipeline: () => {
      const wf = new Workflow();
      wf.add(ex.add, { args: [1] });
      wf.add(ex.multiply, { args: [10] });
      return ex.multiply.send(2, 2).continueWith(wf.toPipeline());
    },
    expect: { ok: true, value: { add: 5, multiply: 40 } },
  },
  // ---- canvas ----
  {
    name: "canvas: chain pipes each result into the next",
    pipeline: () => chain(ex.multiply.s(3, 2), ex.add.s(1), ex.divide.s(7)),
    expect: { ok: true, value: 1 },
  },
  {
    name: "canvas: an immutable signature ignores the previous result",
    pipeline: () => chain(ex.multiply.s(3, 2), ex.add.si(10, 1), ex.add.s(1)),
    expect: { ok: true, value: 12 },
  },
  {
    name: "canvas: group with a concurrency limit",
    pipeline: () =>
      group(
        [1, 2, 3, 4].map((i) => t.probe.send(i, 5)),
        { maxConcurrency: 2 },
      ),
    expect: { ok: true, value: [1, 2, 3, 4] },
  },
  {
    name: "canvas: chord calls back with the list",
    pipeline: () => chord(group([ex.multiply.s(3, 2), ex.multiply.s(4, 5)]), ex.average.s()),
    expect: { ok: true, value: 13 },
  },
  { name: "canvas: chunks, one call per chunk", pipeline: () => chunks(t.sumList, [1, 2, 3, 4, 5, 6, 7], 3), expect: { ok: true, value: [6, 15, 7] } },
  {
    name: "canvas: starmap, one call per argument tuple",
    pipeline: () =>
      starmap(ex.add, [
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    expect: { ok: true, value: [3, 7, 11] },
  },
  // ---- jobs ----
  {
    name: "job: passing a call's result as an argument makes the dependency; the job returns a list",
    pipeline: () =>
      job("arith", (x: number, y: number) => {
        const product = ex.multiply.call(x, y);
        const sum = ex.add.call(x, y);
        const both = ex.add.call(product, sum);
        return [product, sum, both];
      })(5, 6).pipeline,
    expect: { ok: true, value: [30, 11, 41] },
  },
];
