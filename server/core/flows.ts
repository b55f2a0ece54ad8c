// Small pure helpers of the run machine and its step drivers: what a flow
// stands for, the aggregate error of a group or DAG, the size of a task's input.

import type { TaskError, Value } from "@pipewright/protocol";
import { addStats, MAX_ERROR_CAUSES, MAX_ERROR_MESSAGE_CHARS, type ValueStats } from "@pipewright/protocol";
import type { Flow, TaskInput } from "./run-graph.js";
import { ErrorTypes, listValue, noneValue, serverError } from "./values.js";

export function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

/** The single value a finished flow stands for. */
export function single(flow: Flow): Value {
  if (flow.args.length === 1) return flow.args[0];
  return flow.args.length === 0 ? noneValue() : listValue(flow.args);
}

export function isCancellation(error: TaskError): boolean {
  return error.type === ErrorTypes.cancelled;
}

/**
 * One error naming the failures; nested aggregates are flattened. Bounded
 * whatever the count: the first MAX_ERROR_CAUSES causes are kept, and the
 * message names those that fit (10,000 failed branches with long messages
 * made one error of tens of megabytes, repeated in every view of the run).
 */
export function aggregateError(causes: TaskError[], total: number, what: "branches" | "nodes", origin: string): TaskError {
  const flat: TaskError[] = [];
  let failed = 0;
  for (const c of causes) {
    const inner = c.type === ErrorTypes.aggregate && c.causes.length ? c.causes : [c];
    failed += inner.length;
    for (const x of inner) if (flat.length < MAX_ERROR_CAUSES) flat.push(x);
  }
  let list = "";
  let named = 0;
  for (const c of flat) {
    const entry = `${c.origin || "?"}: ${c.type}: ${c.message.length > 500 ? `${c.message.slice(0, 500)}…` : c.message}`;
    if (named > 0 && list.length + entry.length > MAX_ERROR_MESSAGE_CHARS / 2) break;
    list += (named++ ? "; " : "") + entry;
  }
  const rest = failed - named;
  return serverError("AggregateError", `${causes.length} of ${total} ${what} failed: ${list}${rest > 0 ? `; and ${rest} more` : ""}`, origin, flat);
}

/** Size and depth of everything a task is given (once per dispatch: no arrays built). */
export function inputStats(input: TaskInput): ValueStats {
  const total = { bytes: 0, depth: 0 };
  for (const v of input.args) addStats(total, v);
  for (const k in input.kwargs) addStats(total, input.kwargs[k]);
  addStats(total, input.state);
  if (input.parentResults) {
    const parents = { bytes: 0, depth: 0 };
    for (const k in input.parentResults) addStats(parents, input.parentResults[k]);
    total.bytes += parents.bytes;
    total.depth = Math.max(total.depth, parents.depth + 1); // they travel as one map: a level more
  }
  return total;
}
