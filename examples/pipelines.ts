// The example pipelines: the reference document's examples, in Pipewright.
// `npm run examples` runs them all against a real server; docs/examples.md
// shows each one's code.

import { inParallel, type Pipeline } from "../client/pipeline-builder.js";
import {
  addPositive, addState, average, cleanup, countTo100, divide, multiply, multiplyAndSubtract,
  multiplyWithState, safeDivide, subtract, sum, zeroOnDivisionError,
} from "./tasks.js";

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
    build: () => inParallel(Array.from({ length: 10_000 }, (_, i) => multiply.partial(i + 1)), { numStages: 10 }).withInitial({ args: [2] }).continueWith(sum),
  },
  { name: "composition", expected: 5, build: () => multiplyAndSubtract.send(3, 2, 1) },
  { name: "conditional", expected: 1, build: () => addPositive.send(-3, 2) },
  { name: "recursion", expected: 100, build: () => countTo100.send(0) },
];

