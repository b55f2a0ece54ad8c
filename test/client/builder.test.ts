// The builder: immutable, typed (the lines marked @ts-expect-error must not
// compile: `npm test` runs tsc, which fails if any of them does), and its
// toProto() is the message the server receives.

import { describe, expect, it } from "vitest";
import { inParallel, type Pipeline } from "../../client/pipeline-builder.js";
import { taskRef } from "../../client/task-ref.js";
import type { TaskCall } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import type { RemoteError } from "../../proto/runtime/values.js";
import { decodeValue } from "../../proto/runtime/values.js";

const multiply = taskRef<[x: number, y: number], number>("multiply");
const divide = taskRef<[x: number, y: number], number>("divide");
const shout = taskRef<[text: string], string>("shout");
const average = taskRef<[values: number[]], number>("average");
const either = taskRef<[x: number | string], string>("either");
const handler = taskRef<[error: RemoteError, fallback: number], number>("handler");
const cleanup = taskRef<[], null>("cleanup");

describe("typing", () => {
  it("checks the next task's first parameter against the previous result", () => {
    const ok: Pipeline<number> = multiply.send(3, 2).continueWith(divide, 2);
    const wider: Pipeline<string> = multiply.send(1, 2).continueWith(either); // number fits number | string
    const fanIn: Pipeline<number> = inParallel([multiply.send(3, 2), multiply.send(4, 5)]).continueWith(average);
    const caught: Pipeline<number> = multiply.send(1, 1).exceptionally(handler, 0);
    expect([ok, wider, fanIn, caught].every((p) => p.toProto().steps.length > 0)).toBe(true);

    // @ts-expect-error shout wants a string, multiply gives a number
    multiply.send(3, 2).continueWith(shout);
    // @ts-expect-error divide's own argument must be a number
    multiply.send(3, 2).continueWith(divide, "two");
    // @ts-expect-error send() wants all of multiply's arguments
    multiply.send(3);
    // @ts-expect-error average wants the group's list, not a string
    inParallel([shout.send("a")]).continueWith(average);
    // @ts-expect-error an exceptionally handler takes the error first
    multiply.send(1, 1).exceptionally(divide, 1);
    // @ts-expect-error finally takes the task's own arguments only
    multiply.send(1, 1).finallyDo(cleanup, 1);
  });

  it("partial() leaves the leading arguments to the pipeline", () => {
    const p = inParallel([multiply.partial(1), multiply.partial(2)]).withInitial({ args: [2] });
    const m = p.toProto();
    expect(m.initialArgs.map(decodeValue)).toEqual([2]);
    const own = m.steps[0].kind.case === "group" ? m.steps[0].kind.value.branches.map((b) => (b.steps[0].kind.value as TaskCall).args.map(decodeValue)) : [];
    expect(own).toEqual([[1], [2]]);
  });
});

describe("immutability and the message", () => {
  it("every call returns a new pipeline and leaves the old one as it was", () => {
    const a = multiply.send(3, 2);
    const b = a.continueWith(divide, 2);
    const c = b.finallyDo(cleanup);
    expect(a.toProto().steps).toHaveLength(1);
    expect(b.toProto().steps).toHaveLength(2);
    expect(b.toProto().finally).toBeUndefined();
    expect(c.toProto().finally?.task).toBe("cleanup");
  });

  it("refuses steps after finallyDo", () => {
    expect(() => (multiply.send(1, 1).finallyDo(cleanup) as Pipeline<number>).continueWith(divide, 1)).toThrow(/finally step must be last/);
  });

  it("carries options, group settings and the immutable-signature flag", () => {
    const slow = multiply.withOptions({ queue: "gpu", displayName: "big multiply", retry: { maxAttempts: 4, initialDelayMs: 250, retryOn: ["Flaky"] } });
    const m = inParallel([slow.send(1, 2)], { maxParallelism: 3, numStages: 1, returnExceptions: true }).toProto();
    const g = m.steps[0].kind.case === "group" ? m.steps[0].kind.value : undefined;
    expect(g?.maxParallelism).toBe(3);
    expect(g?.returnExceptions).toBe(true);
    const call = g?.branches[0].steps[0].kind.value as {
      options: { queue: string; displayName: string; retry: { maxAttempts: number; initialDelay: { nanos: number }; retryOn: string[] } };
    };
    expect(call.options.queue).toBe("gpu");
    expect(call.options.displayName).toBe("big multiply");
    expect(call.options.retry.maxAttempts).toBe(4);
    expect(call.options.retry.initialDelay.nanos).toBe(250_000_000);
    expect(call.options.retry.retryOn).toEqual(["Flaky"]);
  });
});
