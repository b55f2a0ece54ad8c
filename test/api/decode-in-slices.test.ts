// Decoding in slices gives exactly what protobuf-es's fromBinary gives, for
// messages big enough to be decoded element by element and for random ones.

import { equals, fromBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SubmitRunRequestSchema } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { ConnectRequestSchema } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { decodeInSlices } from "../../proto/runtime/decode-in-slices.js";
import { fuzzBytes } from "../support/proto-fuzz.js";
import { ld, nestedValue, pipeline, submitRequest, taskCall, taskStep, wideGroupPipeline } from "../support/wire.js";

const OPTIONS = { recursionLimit: 1000 };

describe("decodeInSlices", () => {
  it("equals fromBinary on a 20,000-branch group with arguments, kwargs and nested values, and lets timers run meanwhile", async () => {
    const kwargs = ld(3, Buffer.concat([ld(1, "k"), ld(2, nestedValue(30))])); // TaskCall.kwargs entry
    const big = pipeline(taskStep(taskCall("t", ld(2, nestedValue(5)), kwargs)), wideGroupPipeline(20_000).subarray(0));
    const bytes = submitRequest(big, ld(3, "a name"));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const sliced = await decodeInSlices(SubmitRunRequestSchema, bytes, { ...OPTIONS, sliceMs: 1 });
    clearInterval(timer);
    expect(equals(SubmitRunRequestSchema, sliced, fromBinary(SubmitRunRequestSchema, bytes, OPTIONS))).toBe(true);
    expect(ticks).toBeGreaterThan(0);
  });

  it("equals fromBinary on random messages (or fails like it)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(SubmitRunRequestSchema, ConnectRequestSchema), async (seed, schema) => {
        const bytes = fuzzBytes(schema, "random", seed, { maxDepth: 3, maxRepeat: 20 });
        let expected: unknown;
        try {
          expected = fromBinary(schema, bytes, OPTIONS);
        } catch {
          expected = "fails";
        }
        // Every message over 16 bytes is taken apart, so that the element-wise path is what runs.
        const got = await decodeInSlices(schema, bytes, { ...OPTIONS, wholeBytes: 16 }).catch(() => "fails");
        if (expected === "fails" || got === "fails") expect(got).toBe(expected);
        else expect(equals(schema as never, got as never, expected as never)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});
