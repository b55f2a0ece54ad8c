// A request id identifies a submission by meaning: the same pipeline with its
// map entries (initial kwargs, task kwargs, map values) in another order, as
// another language's encoder may write them, is the same submission.

import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipelineSchema, StepSchema, TaskCallSchema } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { SubmitRunRequestSchema } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { ValueMapSchema, ValueSchema, type Value } from "../../proto/gen/pipewright/v1/value_pb.js";
import { canonicalBytes } from "../../proto/runtime/wire-canonical.js";
import { planOf } from "../../proto/runtime/wire-scan.js";
import { encodeValue } from "../../proto/runtime/values.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/** A map value with these entries, inserted in this order (protobuf-es writes them in insertion order). */
const mapOf = (entries: [string, Value][]) =>
  create(ValueSchema, { kind: { case: "map", value: create(ValueMapSchema, { entries: Object.fromEntries(entries) }) } });

function request(order: "forward" | "backward", requestId: string, x = 1) {
  const kw: [string, Value][] = [
    ["alpha", encodeValue(x)],
    [
      "beta",
      mapOf([
        ["one", encodeValue(1)],
        ["two", encodeValue(2)],
        ["three", encodeValue(3)],
      ]),
    ],
    ["gamma", encodeValue("g")],
  ];
  const flip = <T>(list: T[]) => (order === "forward" ? list : [...list].reverse());
  const deep = flip(kw).map(([k, v]) => [k, v.kind.case === "map" ? mapOf(flip(Object.entries(v.kind.value.entries))) : v] as [string, Value]);
  return create(SubmitRunRequestSchema, {
    requestId,
    pipeline: create(PipelineSchema, {
      initialKwargs: Object.fromEntries(deep),
      steps: [create(StepSchema, { kind: { case: "task", value: create(TaskCallSchema, { task: "echo_kwargs", kwargs: Object.fromEntries(deep) }) } })],
    }),
  });
}

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(() => ts?.stop());

describe("idempotency on meaning, not bytes", () => {
  it("the same request id with map entries in another order returns the same run; another pipeline is ALREADY_EXISTS", async () => {
    const forward = request("forward", "kw-order");
    const backward = request("backward", "kw-order");
    expect(Buffer.from(toBinary(SubmitRunRequestSchema, forward)).equals(Buffer.from(toBinary(SubmitRunRequestSchema, backward)))).toBe(false);
    const rpc = ts.client().rpc;
    const a = await rpc.submitRun(forward);
    const b = await rpc.submitRun(backward);
    expect(b.run!.id).toBe(a.run!.id);
    expect(b.existing).toBe(true);
    const err = await rpc.submitRun(request("backward", "kw-order", 2)).catch((e: grpc.ServiceError) => e);
    expect(grpc.status[(err as grpc.ServiceError).code]).toBe("ALREADY_EXISTS");
  });

  it("canonical bytes do not depend on map order, keep the size, and still tell different maps apart", () => {
    const plan = planOf(SubmitRunRequestSchema, new Set());
    const entries = fc.uniqueArray(fc.tuple(fc.string({ maxLength: 6 }), fc.integer()), { selector: ([k]) => k, maxLength: 8 });
    fc.assert(
      fc.property(entries, fc.integer(), (list, seed) => {
        const shuffled = [...list].sort(() => ((seed = (seed * 1103515245 + 12345) | 0) & 1 ? 1 : -1));
        const build = (l: [string, number][]) =>
          toBinary(
            SubmitRunRequestSchema,
            create(SubmitRunRequestSchema, {
              pipeline: create(PipelineSchema, {
                initialKwargs: Object.fromEntries(
                  l.map(([k, v]) => [
                    k,
                    mapOf([
                      ["value", encodeValue(v)],
                      ["key", encodeValue(k)],
                    ]),
                  ]),
                ),
              }),
            }),
          );
        const [a, b] = [build(list), build(shuffled)];
        const [ca, cb] = [canonicalBytes(plan, a), canonicalBytes(plan, b)];
        expect(ca.length).toBe(a.length);
        expect(Buffer.from(ca).equals(Buffer.from(cb))).toBe(true);
        if (list.length) {
          const changed = build([[list[0][0], list[0][1] + 1], ...list.slice(1)]);
          expect(Buffer.from(canonicalBytes(plan, changed)).equals(Buffer.from(ca))).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });
});
