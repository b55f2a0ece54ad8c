// The tasks used by the examples (and by the tests): the functions of the
// reference document on pipelines, written for the Pipewright worker SDK.

import { inParallel, type Pipeline } from "@pipewright/client";
import type { RemoteError } from "@pipewright/protocol";
import { statefulTask, task, type TaskDefinition } from "@pipewright/worker";

export const multiply = task("multiply", (x: number, y: number) => x * y);
export const divide = task("divide", (x: number, y: number) => x / y);
export const add = task("add", (x: number, y: number) => x + y);
export const subtract = task("subtract", (x: number, y: number) => x - y);
export const average = task("average", (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length);
export const sum = task("sum", (values: number[]) => values.reduce((a, b) => a + b, 0));

/** Sets the state to 10 and multiplies. */
export const multiplyWithState = statefulTask("multiply_with_state", (_state: unknown, x: number, y: number) => [10, x * y] as [number, number]);
/** Adds the state to its argument. */
export const addState = statefulTask("add_state", (state: number, x: number) => [state, state + x] as [number, number]);

export const fail = task("fail", (message: string): number => {
  throw new ValueError(message);
});
/** An exceptionally handler: turns an error into a number. */
export const handleError = task("handle_error", (error: RemoteError, fallback: number) => (error.type === "ValueError" ? fallback : -1));
/** A finally step: records in the state that cleanup ran. */
export const cleanup = statefulTask(
  "cleanup",
  (state: Record<string, unknown> | null) => [{ ...(state ?? {}), cleaned: true }, null] as [Record<string, unknown>, null],
);

export const makePositive = task("make_positive", (x: number) => (x > 0 ? x : multiply.send(x, -1)));
export const addPositive = task("add_positive", (x: number, y: number) => add.send(x, y).continueWith(makePositive));
export const multiplyAndSubtract = task("multiply_and_subtract", (a: number, b: number, c: number) => multiply.send(a, b).continueWith(subtract, c));
// Recursion: count_to returns a pipeline that calls check_count, which returns
// count_to again until the target is reached (types spelled out: they are recursive).
export const checkResult: TaskDefinition<[x: number, target: number], number> = task("check_count", (x: number, target: number): number | Pipeline<number> =>
  x >= target ? x : countTo.send(x, target),
);
export const countTo: TaskDefinition<[x: number, target: number], number> = task("count_to", (x: number, target: number): Pipeline<number> =>
  add.send(x, 1).continueWith(checkResult, target),
);

/** The reference's recursion example: counts to 100 through child pipelines. */
export const checkResult100: TaskDefinition<[x: number], number> = task("check_result", (x: number): number | Pipeline<number> =>
  x === 100 ? x : countTo100.send(x),
);
export const countTo100: TaskDefinition<[x: number], number> = task("count_to_100", (x: number): Pipeline<number> =>
  add.send(x, 1).continueWith(checkResult100),
);

/** Division that refuses to divide by zero (JavaScript would return Infinity). */
export const safeDivide = task("safe_divide", (x: number, y: number) => {
  if (y === 0) throw new ZeroDivisionError(`cannot divide ${x} by zero`);
  return x / y;
});
/** An exceptionally handler: a division by zero gives 0, anything else is re-raised. */
export const zeroOnDivisionError = task("zero_on_division_error", (error: RemoteError) => {
  if (error.type === "ZeroDivisionError") return 0;
  throw error;
});

// ---- for the DAG, canvas and job examples ----

/** Fan-in node of a DAG: receives its parents' results keyed by node id. */
export const combine = task("combine", (parentResults: Record<string, number>) => Object.values(parentResults).reduce((a, b) => a + b, 0), {
  parentResults: true,
});
/** Sums a batch of numbers (chunks). */
export const sumBatch = task("sum_batch", (items: number[]) => items.reduce((a, b) => a + b, 0));
/** The reference's job tasks. */
export const simpleArithmetic = task("simple_arithmetic", () => 1 + 2);
export const createSales = task("create_sales", () => ({ product: ["Widget", "Gadget", "Gizmo"], quantity: [10, 5, 8], price: [9.99, 24.99, 14.99] }));
export const countRows = task("count_rows", (table: { product: string[] }) => table.product.length);

export class ValueError extends Error {
  override name = "ValueError";
}
export class ZeroDivisionError extends Error {
  override name = "ZeroDivisionError";
}

export const allTasks: TaskDefinition<any, any>[] = [
  multiply,
  divide,
  add,
  subtract,
  average,
  sum,
  multiplyWithState,
  addState,
  fail,
  handleError,
  cleanup,
  makePositive,
  addPositive,
  multiplyAndSubtract,
  checkResult,
  countTo,
  checkResult100,
  countTo100,
  safeDivide,
  zeroOnDivisionError,
  combine,
  sumBatch,
  simpleArithmetic,
  createSales,
  countRows,
];

export { inParallel };
