// How big and how deep a Value is, and errors cut to a bounded size.
//
// The server builds values (a group's list of branch results, a DAG node's
// parent results) and passes results on: 64 branches each returning an 8 MB
// value make a 512 MB list, more than any message can carry; child pipelines
// returning group results nest lists deeper than any decoder takes. So the
// machine measures what it is about to send (a task's input, a run's result)
// and fails the step with pipewright.LimitExceeded instead. Values are
// immutable and shared, so each one is measured once (memoized); the walk is
// a loop, not a recursion, since server-built values can be deep.

import { create } from "@bufbuild/protobuf";
import { TaskErrorSchema, type TaskError, type Value } from "../gen/pipewright/v1/value_pb.js";
import { MAX_ERROR_CAUSES, MAX_ERROR_MESSAGE_CHARS, MAX_ERROR_STACK_CHARS } from "./limits.js";

export interface ValueStats {
  /** About the encoded size: payload bytes, strings, and a few bytes per node. */
  bytes: number;
  /** Values and errors nested in each other (a payload alone: 1). */
  depth: number;
}

const measured = new WeakMap<object, ValueStats>();
const NODE_OVERHEAD = 6;

type Node = Value | TaskError;

function isError(n: Node): n is TaskError {
  return n.$typeName === "pipewright.v1.TaskError";
}

/** A payload or an empty value: measured on the spot. */
function isLeaf(n: Node): boolean {
  return !isError(n) && (n.kind.case === "payload" || n.kind.case === undefined);
}

function children(n: Node): Node[] {
  if (isError(n)) return n.details ? [n.details, ...n.causes] : n.causes;
  switch (n.kind.case) {
    case "list":
      return n.kind.value.items;
    case "map":
      return Object.values(n.kind.value.entries);
    case "error":
      return [n.kind.value];
    default:
      return [];
  }
}

function ownBytes(n: Node): number {
  if (isError(n)) return NODE_OVERHEAD + n.type.length + n.message.length + n.stack.length + n.origin.length;
  switch (n.kind.case) {
    case "payload":
      return NODE_OVERHEAD + n.kind.value.data.length + n.kind.value.encoding.length;
    case "map": {
      let keys = 0;
      for (const k in n.kind.value.entries) keys += k.length + NODE_OVERHEAD;
      return NODE_OVERHEAD + keys;
    }
    default:
      return NODE_OVERHEAD;
  }
}

/**
 * Size and depth of a value (or error), measured once per object. A payload
 * (what most values are) is measured on the spot, not remembered: a WeakMap
 * entry per task argument made every garbage collection slower.
 */
export function valueStats(root: Node): ValueStats {
  if (!isError(root) && root.kind.case === "payload") return { bytes: ownBytes(root), depth: 1 };
  if (!isError(root) && root.kind.case === undefined) return { bytes: NODE_OVERHEAD, depth: 1 };
  const known = measured.get(root);
  if (known) return known;
  // Post-order walk with an explicit stack: children first, then the node.
  const stack: { node: Node; kids: Node[]; next: number }[] = [{ node: root, kids: children(root), next: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.next < top.kids.length) {
      const kid = top.kids[top.next++];
      if (!isLeaf(kid) && !measured.has(kid)) stack.push({ node: kid, kids: children(kid), next: 0 });
      continue;
    }
    let bytes = ownBytes(top.node);
    let depth = 0;
    for (const kid of top.kids) {
      const s = isLeaf(kid) ? valueStats(kid) : measured.get(kid)!;
      bytes += s.bytes;
      depth = Math.max(depth, s.depth);
    }
    measured.set(top.node, { bytes, depth: depth + 1 });
    stack.pop();
  }
  return measured.get(root)!;
}

/** Size and depth of several values together (a task's arguments). */
export function valuesStats(values: Iterable<Value | undefined>): ValueStats {
  const total = { bytes: 0, depth: 0 };
  for (const v of values) addStats(total, v);
  return total;
}

/** Adds a value's size to `total` and raises its depth (for callers that walk their own fields). */
export function addStats(total: ValueStats, v: Value | undefined): void {
  if (!v) return;
  const s = valueStats(v);
  total.bytes += s.bytes;
  if (s.depth > total.depth) total.depth = s.depth;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters cut)`;
}

/**
 * The error with its texts and causes cut to the limits (a marker says how
 * much went), and details over `maxDetailsBytes` dropped: a worker's 45 MB
 * error message made every view of its run unsendable. Returns the error
 * itself when it is within them.
 */
export function boundError(error: TaskError, maxDetailsBytes = 64 * 1024): TaskError {
  const s = valueStats(error);
  if (s.bytes <= MAX_ERROR_MESSAGE_CHARS && error.causes.length <= MAX_ERROR_CAUSES) return error;
  const causes = error.causes.slice(0, MAX_ERROR_CAUSES).map((c) => boundError(c, maxDetailsBytes));
  const dropped = error.causes.length - causes.length;
  const detailsBytes = error.details ? valueStats(error.details).bytes : 0;
  const notes = [dropped > 0 ? `${dropped} more causes dropped` : "", detailsBytes > maxDetailsBytes ? `details of ${detailsBytes} bytes dropped` : ""].filter(
    Boolean,
  );
  return create(TaskErrorSchema, {
    type: cut(error.type, 200),
    message: cut(error.message, MAX_ERROR_MESSAGE_CHARS) + (notes.length ? ` (${notes.join("; ")})` : ""),
    stack: cut(error.stack, MAX_ERROR_STACK_CHARS),
    details: detailsBytes > maxDetailsBytes ? undefined : error.details,
    terminal: error.terminal,
    origin: cut(error.origin, 1000),
    causes,
  });
}
