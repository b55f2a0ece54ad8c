// How branch states come back together after a group (or a DAG).
//
// Every branch starts from a copy of the state at the group's start (`base`).
// At the end:
//  - a branch that left the state equal to `base` contributed nothing;
//  - when `base` (if any) and every contributing state are maps (the SDKs
//    encode object-shaped state as a ValueMap, one entry per key), the result
//    is `base` with each branch's changes applied key by key in declaration
//    order: keys a branch set or changed take its value, keys it removed are
//    removed, and on a conflict the later branch wins;
//  - otherwise the state of the last contributing branch wins.
// Equality is structural on the encoded values, so the rule is the same in
// every language and needs no decoding.

import type { Value } from "@pipewright/protocol";
import { mapValue, valuesEqual } from "./values.js";

export function mergeBranchStates(base: Value | undefined, branches: (Value | undefined)[]): Value | undefined {
  const changed = branches.filter((s) => !valuesEqual(s, base));
  if (changed.length === 0) return base;
  const isMap = (v: Value | undefined) => v?.kind.case === "map";
  if ((base === undefined || isMap(base)) && changed.every(isMap)) {
    const baseEntries = base?.kind.case === "map" ? base.kind.value.entries : {};
    const merged: Record<string, Value> = { ...baseEntries };
    for (const s of changed) {
      const entries = (s as Value & { kind: { case: "map" } }).kind.value.entries;
      for (const [k, v] of Object.entries(entries)) {
        if (!valuesEqual(v, baseEntries[k])) merged[k] = v;
      }
      for (const k of Object.keys(baseEntries)) {
        if (!(k in entries)) delete merged[k];
      }
    }
    return mapValue(merged);
  }
  return changed[changed.length - 1];
}
