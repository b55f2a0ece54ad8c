// The example pipelines: the reference document's examples, in Pipewright.
// `npm run examples` runs them all against a real server; docs/examples.md
// shows each one's code.

import { inParallel, type Pipeline } from "@pipewright/client";
import { chord, chunks, group, starmap } from "@pipewright/client";
import { job } from "@pipewright/client";
import { Workflow } from "@pipewright/client";
import {
  addPositive,
  addState,
  average,
  cleanup,
  countTo100,
  divide,
  multiply,
  multiplyAndSubtract,
  multiplyWithState,
  safeDivide,
  subtract,
  sum,
  zeroOnDivisionError,
  add,
  combine,
  sumBatch,
  simpleArithmetic,
  createSales,
  countRows,
} from "./tasks.js";

/** The reference's job: three calls, one of which depends on another through its argument. */
export const basicPipeline = job("basic_orchestration", (x: number, y: number) => {
  const arith = simpleArithmetic.call();
  const product = multiply.call(x, y);
  const sales = createSales.call();
  const rows = countRows.call(sales); // depends on create_sales
  return [arith, product, rows];
});

/** A diamond: split, two branches, a fan-in that receives both results keyed by node id. */
function diamond(): Pipeline<unknown> {
  const wf = new Workflow("diamond");
  const split = wf.add(multiply, { id: "split", args: [3, 4] });
  const left = wf.add(add, { id: "left", args: [null, 1], dependsOn: [split], parentArguments: [{ position: 0, node: split }] });
  const right = wf.add(multiply, { id: "right", args: [null, 2], dependsOn: [split], parentArguments: [{ position: 0, node: split }] });
  const join = wf.add(combine, { id: "join", dependsOn: [left, right] });
  return wf.toPipeline([join]).continueWith(sum);
}

export interface Example {
  name: string;
  /** What the reference document says it should give. */
  expected: unknown;
  build(): Pipeline<unknown>;
}

export const examples: Example[] = [
  { name: "continuation", expected: 3, build: () => multiply.send(3, 2).continueWith(divide, 2) },
  { name: "fan-in-average", expected: 13, build: () => inParallel([multiply.send(3, 2), multiply.send(4, 5)]).continueWith(average) },
  {
    name: "nested",
    expected: 9.5,
    build: () =>
      inParallel([
        multiply.send(3, 2).continueWith(divide, 2), // continuation within a group
        inParallel([multiply.send(4, 5), multiply.send(3, 4)]).continueWith(average), // nested group
      ]).continueWith(average),
  },
  { name: "state", expected: 15, build: () => multiplyWithState.send(3, 2).continueWith(subtract, 1).continueWith(addState) },
  { name: "exceptionally", expected: 0, build: () => safeDivide.send(1, 0).exceptionally(zeroOnDivisionError) },
  { name: "finally", expected: 6, build: () => multiply.send(3, 2).finallyDo(cleanup) },
  {
    name: "with-initial",
    expected: 100010000,
    build: () =>
      inParallel(
        Array.from({ length: 10_000 }, (_, i) => multiply.partial(i + 1)),
        { numStages: 10 },
      )
        .withInitial({ args: [2] })
        .continueWith(sum),
  },
  { name: "composition", expected: 5, build: () => multiplyAndSubtract.send(3, 2, 1) },
  { name: "conditional", expected: 1, build: () => addPositive.send(-3, 2) },
  { name: "recursion", expected: 100, build: () => countTo100.send(0) },
  { name: "dag-diamond", expected: 37, build: diamond },
  { name: "chord", expected: 13, build: () => chord(group([multiply.s(3, 2), multiply.s(4, 5)]), average.s()) },
  { name: "chunks", expected: [6, 15, 24, 10], build: () => chunks(sumBatch, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3) },
  {
    name: "starmap",
    expected: [3, 7, 11],
    build: () =>
      starmap(add, [
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
  },
  { name: "job", expected: [3, 30, 3], build: () => basicPipeline(5, 6).pipeline },
];
