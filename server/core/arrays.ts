// Array helpers that stay safe at any size. `a.push(...b)` and
// `Math.min(...b)` pass every element as an argument on the call stack: past
// roughly 100,000 elements that throws a RangeError (seen with 200,000
// validation violations), so anything sized by a request uses these instead.

/** Appends every item of `items` to `target`; returns `target`. */
export function pushAll<T>(target: T[], items: readonly T[]): T[] {
  for (let i = 0; i < items.length; i++) target.push(items[i]);
  return target;
}

/** The smallest of `values` (Infinity when empty). */
export function minOf(values: readonly number[]): number {
  let min = Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] < min) min = values[i];
  return min;
}
