// Trigger filters (server/core/event-filter.ts), property-tested: a condition
// naming a path of a payload and the JSON found there matches, whether the
// payload is one JSON payload or structured (ValueMap / ValueList around JSON
// payloads); a different value does not; what is not JSON matches no filter
// with conditions; bad filters are refused field by field.

import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FilterConditionSchema, ValueSchema, type Value } from "@pipewright/protocol";
import { compileFilter, filterViolations, jsonEqual, matchesFilter, MAX_FILTER_CONDITIONS } from "../../server/core/event-filter.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const utf8 = new TextEncoder();
const jsonPayload = (j: unknown): Value => create(ValueSchema, { kind: { case: "payload", value: { data: utf8.encode(JSON.stringify(j)) } } });

/** `j` as a Value: structured (map / list) down to `depth`, JSON payloads below. */
function structured(j: Json, depth: number): Value {
  if (depth <= 0 || j === null || typeof j !== "object") return jsonPayload(j);
  if (Array.isArray(j)) return create(ValueSchema, { kind: { case: "list", value: { items: j.map((x) => structured(x, depth - 1)) } } });
  const entries = Object.fromEntries(Object.entries(j).map(([k, v]) => [k, structured(v, depth - 1)]));
  return create(ValueSchema, { kind: { case: "map", value: { entries } } });
}

/** Every path of `j` a filter can name (keys without dots), with the JSON found there. */
function pathsOf(j: Json, prefix: string[] = [], out: [string, Json][] = []): [string, Json][] {
  out.push([prefix.join("."), j]);
  if (j !== null && typeof j === "object")
    for (const [k, v] of Object.entries(j)) if (k !== "" && !k.includes(".") && k.length <= 200) pathsOf(v, [...prefix, k], out);
  return out;
}

const cond = (path: string, equals: unknown) => create(FilterConditionSchema, { path, equals: JSON.stringify(equals) });
const json = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<Json>;

describe("trigger filters", () => {
  it("a condition on any path of a payload, equal to what is there, matches: JSON payload or structured", () => {
    fc.assert(
      fc.property(json, fc.nat(), fc.nat({ max: 5 }), (payload, pick, depth) => {
        const paths = pathsOf(payload);
        const [path, found] = paths[pick % paths.length];
        const filter = compileFilter([cond(path, found)]);
        expect(filterViolations([cond(path, found)], "f")).toEqual([]);
        expect(matchesFilter(filter, jsonPayload(payload))).toBe(true);
        expect(matchesFilter(filter, structured(payload, depth))).toBe(true);
      }),
    );
  });

  it("a condition with another value does not match", () => {
    fc.assert(
      fc.property(json, fc.nat(), json, fc.nat({ max: 5 }), (payload, pick, other, depth) => {
        const paths = pathsOf(payload);
        const [path, found] = paths[pick % paths.length];
        fc.pre(!jsonEqual(found, other));
        const filter = compileFilter([cond(path, other)]);
        expect(matchesFilter(filter, jsonPayload(payload))).toBe(false);
        expect(matchesFilter(filter, structured(payload, depth))).toBe(false);
      }),
    );
  });

  it("all conditions must hold", () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ minLength: 1 }).filter((k) => !k.includes(".")),
          fc.integer(),
          { minKeys: 2 },
        ),
        (o) => {
          const keys = Object.keys(o);
          const all = keys.map((k) => cond(k, o[k]));
          expect(matchesFilter(compileFilter(all), jsonPayload(o))).toBe(true);
          const oneWrong = [...all.slice(1), cond(keys[0], o[keys[0]] + 1)];
          expect(matchesFilter(compileFilter(oneWrong), jsonPayload(o))).toBe(false);
        },
      ),
    );
  });

  it("compares JSON by value: key order and number spelling do not matter", () => {
    const payload = jsonPayload({ a: { x: 1, y: [true, null] } });
    expect(matchesFilter(compileFilter([create(FilterConditionSchema, { path: "a", equals: '{"y":[true,null],"x":1.0}' })]), payload)).toBe(true);
    expect(matchesFilter(compileFilter([create(FilterConditionSchema, { path: "a.y.1", equals: "null" })]), payload)).toBe(true);
    // A missing path equals nothing, not even null; an index on an object, a key on a list, neither.
    for (const path of ["a.z", "a.y.2", "a.x.0", "a.y.x", "a.y.01"])
      expect(matchesFilter(compileFilter([create(FilterConditionSchema, { path, equals: "null" })]), payload), path).toBe(false);
  });

  it("what is not JSON matches no filter with conditions, and every filter without", () => {
    const notJson: Value[] = [
      create(ValueSchema, { kind: { case: "payload", value: { encoding: "bytes", data: utf8.encode("null") } } }), // JSON bytes, but not said to be JSON
      create(ValueSchema, { kind: { case: "payload", value: { encoding: "json", data: utf8.encode("{not json") } } }),
      create(ValueSchema, { kind: { case: "payload", value: { data: new Uint8Array([0xff, 0xfe]) } } }),
      create(ValueSchema, { kind: { case: "error", value: { type: "E", message: "m" } } }),
      create(ValueSchema, { kind: { case: "payload", value: { data: utf8.encode("[".repeat(200_000)) } } }),
    ];
    for (const v of notJson) {
      expect(matchesFilter(compileFilter([cond("", null)]), v)).toBe(false);
      expect(matchesFilter([], v)).toBe(true);
    }
    // The empty value and an empty JSON payload are null.
    expect(matchesFilter(compileFilter([cond("", null)]), create(ValueSchema))).toBe(true);
    expect(matchesFilter(compileFilter([cond("", null)]), undefined)).toBe(true);
    // "__proto__" is a key like any other.
    const proto = structured(JSON.parse('{"__proto__":{"a":1}}'), 2);
    expect(matchesFilter(compileFilter([cond("__proto__.a", 1)]), proto)).toBe(true);
    expect(matchesFilter(compileFilter([cond("", JSON.parse('{"__proto__":{"a":1}}'))]), proto)).toBe(true);
  });

  it("refuses bad filters, naming each condition's field", () => {
    const bad = [
      create(FilterConditionSchema, { path: "a..b", equals: "1" }),
      create(FilterConditionSchema, { path: "a", equals: "eu" }),
      create(FilterConditionSchema, { path: Array(33).fill("x").join("."), equals: "1" }),
      create(FilterConditionSchema, { path: "a", equals: `"${"x".repeat(5000)}"` }),
    ];
    expect(filterViolations(bad, "trigger.filter").map((v) => v.field)).toEqual([
      "trigger.filter[0].path",
      "trigger.filter[1].equals",
      "trigger.filter[2].path",
      "trigger.filter[3].equals",
    ]);
    const many = Array.from({ length: MAX_FILTER_CONDITIONS + 1 }, () => cond("a", 1));
    expect(filterViolations(many, "trigger.filter")).toEqual([{ field: "trigger.filter", description: expect.stringContaining("at most 16") }]);
  });
});
