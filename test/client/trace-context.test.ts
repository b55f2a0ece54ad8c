// The client's W3C Trace Context fallback (used when the application registered
// no propagator) reads and writes what @opentelemetry/core's propagator does,
// and the application's propagator wins when there is one.

import { createTraceState, propagation, ROOT_CONTEXT, trace, TraceFlags, type TextMapPropagator } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterEach, describe, expect, it } from "vitest";
import { extractTraceContext, injectTraceContext, w3cTraceContext } from "../../client/trace-context.js";

const sc = {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: TraceFlags.SAMPLED,
  traceState: createTraceState("vendor=abc,other=1"),
};
const ctx = trace.setSpanContext(ROOT_CONTEXT, sc);
const set = (c: Record<string, string>, k: string, v: string) => (c[k] = v);
const getter = { keys: (c: Record<string, string>) => Object.keys(c), get: (c: Record<string, string>, k: string) => c[k] };

afterEach(() => propagation.disable());

describe("W3C Trace Context without a registered propagator", () => {
  it("writes the same headers as @opentelemetry/core", () => {
    const ours: Record<string, string> = {};
    const core: Record<string, string> = {};
    injectTraceContext(ctx, ours, set);
    new W3CTraceContextPropagator().inject(ctx, core, { set });
    expect(ours).toEqual(core);
    expect(ours).toEqual({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "vendor=abc,other=1" });
  });

  it("reads them back as a remote span context; nothing from a missing or invalid traceparent", () => {
    const back = trace.getSpanContext(
      extractTraceContext({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "vendor=abc" }),
    );
    expect(back).toMatchObject({ traceId: sc.traceId, spanId: sc.spanId, traceFlags: 1, isRemote: true });
    expect(back?.traceState?.get("vendor")).toBe("abc");
    for (const bad of [
      "",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    ]) {
      expect(trace.getSpanContext(extractTraceContext({ traceparent: bad })), bad).toBeUndefined();
      expect(trace.getSpanContext(new W3CTraceContextPropagator().extract(ROOT_CONTEXT, { traceparent: bad }, getter)), bad).toBeUndefined();
    }
  });

  it("writes nothing for a context without a valid span", () => {
    const carrier: Record<string, string> = {};
    injectTraceContext(ROOT_CONTEXT, carrier, set);
    expect(carrier).toEqual({});
  });
});

describe("with a propagator the application registered", () => {
  it("uses it, not W3C", () => {
    const custom: TextMapPropagator = {
      inject: (_c, carrier, setter) => setter.set(carrier, "x-custom", "yes"),
      extract: (c) => trace.setSpanContext(c, { ...sc, spanId: "1111111111111111" }),
      fields: () => ["x-custom"],
    };
    propagation.setGlobalPropagator(custom);
    const carrier: Record<string, string> = {};
    injectTraceContext(ctx, carrier, set);
    expect(carrier).toEqual({ "x-custom": "yes" });
    expect(trace.getSpanContext(extractTraceContext({}))?.spanId).toBe("1111111111111111");
    expect(w3cTraceContext.fields()).toEqual(["traceparent", "tracestate"]);
  });
});
