// The canvas: chain, group, chord, chunks and starmap, for users coming from
// Celery-style task queues. Each is a Pipeline, so they compose with
// everything else; signatures are `task.s(...)` (receives the previous result)
// and `task.si(...)` (ignores it).

import { inParallel, type Pipeline } from "./pipeline-builder.js";
import type { TaskRef } from "./task-ref.js";

/**
 * Runs pipelines one after another, each result the first argument of the next.
 * @example chain(extract.s(url), transform.s(), load.s())
 */
export function chain(first: Pipeline<any>, ...rest: Pipeline<any>[]): Pipeline<any> {
  return rest.reduce((p, next) => p.continueWith(next), first);
}

export interface CanvasGroupOptions {
  /**
   * At most this many members run at once. Unlike the waves of some task
   * queues, this is a semaphore: the next member starts as soon as one ends.
   */
  maxConcurrency?: number;
}

/**
 * Runs pipelines in parallel; the result is the list of their results.
 * @example group([process.s(1), process.s(2), process.s(3)], { maxConcurrency: 2 })
 */
export function group<T>(members: Pipeline<T>[], options: CanvasGroupOptions = {}): Pipeline<T[]> {
  return inParallel(members, { maxParallelism: options.maxConcurrency ?? 0 }) as Pipeline<T[]>;
}

/**
 * A group, then a callback that receives the list of the group's results.
 * @example chord(group([fetch.s(a), fetch.s(b)]), merge.s())
 */
export function chord<T, R>(header: Pipeline<T[]>, callback: Pipeline<R>): Pipeline<R> {
  return header.continueWith(callback);
}

/**
 * One call of `task` per chunk of `items` (each call gets one chunk, a list);
 * the result is the list of the calls' results.
 * @example chunks(processBatch, items, 100)
 */
export function chunks<T, R>(task: TaskRef<[items: T[]], R>, items: T[], chunkSize: number, options: CanvasGroupOptions = {}): Pipeline<R[]> {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`chunks: chunkSize must be a positive integer, got ${chunkSize}`);
  const calls: Pipeline<R>[] = [];
  for (let i = 0; i < items.length; i += chunkSize) calls.push(task.send(items.slice(i, i + chunkSize)));
  return group(calls, options);
}

/**
 * One call of `task` per argument tuple; the result is the list of results.
 * @example starmap(add, [[1, 2], [3, 4], [5, 6]])   // [3, 7, 11]
 */
export function starmap<A extends unknown[], R>(task: TaskRef<A, R>, argsList: A[], options: CanvasGroupOptions = {}): Pipeline<R[]> {
  return group(
    argsList.map((args) => task.send(...args)),
    options,
  );
}
