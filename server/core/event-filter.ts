// Trigger filters: conditions on an event's payload, all of which must hold
// for a trigger to start its run.
//
// THE ONE PLACE THE SERVER READS A PAYLOAD. Everywhere else payloads are
// opaque bytes the server copies (value.proto, DESIGN.md §4): that keeps it
// fast and codec-agnostic. A trigger, though, must choose by content ("only
// orders from the EU"), and doing it in the server is what makes "each event
// starts each matching trigger's run exactly once" hold: a filter applied by
// a first task would still start (and record) a run per event. So, for
// trigger matching only, this module reads:
//   - JSON payloads (encoding "" or "json"), parsed once per payload and only
//     up to MAX_VALUE_BYTES (the value size limit every side shares);
//   - the structure the SDKs and the server build around payloads: ValueMap
//     entries by key, ValueList items by index.
// Anything else (another encoding, bytes that do not parse, an error value)
// is opaque: it matches no filter that has conditions. Nothing read here is
// stored or passed on; the run gets the payload bytes as they came.
//
// Pure: no I/O, deterministic (property-tested in test/core/event-filter.test.ts).

import type { FilterCondition, Value } from "@pipewright/protocol";
import { MAX_VALUE_BYTES, type Violation } from "@pipewright/protocol";

/** Conditions per trigger. */
export const MAX_FILTER_CONDITIONS = 16;
/** Parts of a condition's path ("a.b.0" has 3). */
export const MAX_FILTER_PATH_PARTS = 32;
/** Characters of one part of a path (a key). */
export const MAX_FILTER_PATH_PART_CHARS = 200;
/** Characters of a condition's JSON literal. */
export const MAX_FILTER_LITERAL_CHARS = 4096;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A checked condition, ready to evaluate. */
export interface CompiledCondition {
  parts: string[];
  literal: Json;
}

const INDEX = /^(0|[1-9][0-9]{0,8})$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The violations of a filter (field paths under `prefix`, e.g. "trigger.filter"). */
export function filterViolations(conditions: readonly FilterCondition[], prefix: string): Violation[] {
  const out: Violation[] = [];
  if (conditions.length > MAX_FILTER_CONDITIONS) {
    out.push({ field: prefix, description: `at most ${MAX_FILTER_CONDITIONS} conditions, got ${conditions.length}` });
    return out;
  }
  conditions.forEach((c, i) => {
    const parts = splitPath(c.path);
    if (parts.length > MAX_FILTER_PATH_PARTS)
      out.push({ field: `${prefix}[${i}].path`, description: `at most ${MAX_FILTER_PATH_PARTS} parts, got ${parts.length}` });
    else if (parts.some((p) => p.length === 0 || p.length > MAX_FILTER_PATH_PART_CHARS))
      out.push({
        field: `${prefix}[${i}].path`,
        description: `parts separated by "." must be 1 to ${MAX_FILTER_PATH_PART_CHARS} characters, got ${JSON.stringify(c.path.slice(0, 80))}`,
      });
    if (c.equals.length > MAX_FILTER_LITERAL_CHARS)
      out.push({ field: `${prefix}[${i}].equals`, description: `at most ${MAX_FILTER_LITERAL_CHARS} characters, got ${c.equals.length}` });
    else if (parseJson(c.equals) === undefined)
      out.push({
        field: `${prefix}[${i}].equals`,
        description: `must be a JSON literal (e.g. "\\"eu\\"", 42, true, null), got ${JSON.stringify(c.equals.slice(0, 80))}`,
      });
  });
  return out;
}

/** Compiles checked conditions (filterViolations found none). */
export function compileFilter(conditions: readonly FilterCondition[]): CompiledCondition[] {
  return conditions.map((c) => ({ parts: splitPath(c.path), literal: parseJson(c.equals) as Json }));
}

/** Whether a payload satisfies every condition (no conditions: always). Never throws. */
export function matchesFilter(conditions: readonly CompiledCondition[], payload: Value | undefined): boolean {
  if (conditions.length === 0) return true;
  const parsed = new Map<Value, Json | undefined>(); // each JSON payload parsed once, whatever the number of conditions
  return conditions.every((c) => {
    const found = lookup(payload, c.parts, parsed);
    return found !== undefined && jsonEqual(found, c.literal);
  });
}

function splitPath(path: string): string[] {
  return path === "" ? [] : path.split(".");
}

/** The JSON at `parts` inside `value`; undefined when missing or not readable as JSON. */
function lookup(value: Value | undefined, parts: readonly string[], parsed: Map<Value, Json | undefined>): Json | undefined {
  let v = value;
  for (let i = 0; i < parts.length; i++) {
    const kind = v?.kind;
    if (kind?.case === "map") {
      v = Object.hasOwn(kind.value.entries, parts[i]) ? kind.value.entries[parts[i]] : undefined;
      if (!v) return undefined;
    } else if (kind?.case === "list") {
      if (!INDEX.test(parts[i])) return undefined;
      v = kind.value.items[Number(parts[i])];
      if (!v) return undefined;
    } else {
      return walkJson(payloadJson(v, parsed), parts.slice(i));
    }
  }
  return valueJson(v, parsed);
}

/** A whole Value as JSON (a map as an object, a list as an array); undefined if any part is not JSON. */
function valueJson(v: Value | undefined, parsed: Map<Value, Json | undefined>): Json | undefined {
  const kind = v?.kind;
  if (kind?.case === "map") {
    const out: [string, Json][] = [];
    for (const [k, item] of Object.entries(kind.value.entries)) {
      const j = valueJson(item, parsed);
      if (j === undefined) return undefined;
      out.push([k, j]);
    }
    return Object.fromEntries(out); // own properties, "__proto__" included (an assignment would set the prototype)
  }
  if (kind?.case === "list") {
    const out: Json[] = [];
    for (const item of kind.value.items) {
      const j = valueJson(item, parsed);
      if (j === undefined) return undefined;
      out.push(j);
    }
    return out;
  }
  return payloadJson(v, parsed);
}

/** A payload's JSON: an empty Value or an empty JSON payload is null; anything not JSON is undefined. */
function payloadJson(v: Value | undefined, parsed: Map<Value, Json | undefined>): Json | undefined {
  if (!v || v.kind.case === undefined) return null;
  if (v.kind.case !== "payload") return undefined;
  if (parsed.has(v)) return parsed.get(v);
  const { encoding, data } = v.kind.value;
  let out: Json | undefined;
  if ((encoding === "" || encoding === "json") && data.length <= MAX_VALUE_BYTES) {
    if (data.length === 0) out = null;
    else {
      try {
        out = parseJson(utf8.decode(data));
      } catch {
        out = undefined; // not UTF-8
      }
    }
  }
  parsed.set(v, out);
  return out;
}

function walkJson(json: Json | undefined, parts: readonly string[]): Json | undefined {
  let j = json;
  for (const p of parts) {
    if (Array.isArray(j)) {
      if (!INDEX.test(p)) return undefined;
      j = Number(p) < j.length ? j[Number(p)] : undefined;
    } else if (j !== null && typeof j === "object") {
      j = Object.hasOwn(j, p) ? j[p] : undefined;
    } else return undefined;
    if (j === undefined) return undefined;
  }
  return j;
}

function parseJson(text: string): Json | undefined {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return undefined; // not JSON, or nested deeper than the parser's stack
  }
}

/** Equality of JSON values: numbers by value, objects regardless of key order. Depth bounded by the literal's (at most 4096 characters). */
export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bs = b as Json[];
    return a.length === bs.length && a.every((x, i) => jsonEqual(x, bs[i]));
  }
  const ao = a as { [key: string]: Json };
  const bo = b as { [key: string]: Json };
  const keys = Object.keys(ao);
  return keys.length === Object.keys(bo).length && keys.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]));
}
