// Trace context across Pipewright's hops, with the OpenTelemetry API alone:
// the client puts the caller's context in a submit's gRPC metadata, the
// worker SDK reads the attempt's from its assignment (TaskAssignment.trace_context).
//
// The format is W3C Trace Context (`traceparent`, `tracestate`), which the
// server reads and writes. The application's global propagator is used when it
// registered one (an OpenTelemetry SDK does: W3C trace context and baggage by
// default); with none registered the API's is a no-op, which would drop the
// context silently, so the W3C format is then written and read here (the
// ~40 lines below), and context always travels. Being a library, this package
// depends on the API only (a peer dependency): the application's SDK, and its
// single API instance, record the spans.

import {
  createTraceState,
  propagation,
  ROOT_CONTEXT,
  trace,
  type Context,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from "@opentelemetry/api";

const TRACEPARENT = "traceparent";
const TRACESTATE = "tracestate";
const TRACEPARENT_FORMAT = /^\s?([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s?$/;

/** The W3C Trace Context propagator (as @opentelemetry/core's), for when the application registered none. */
export const w3cTraceContext: TextMapPropagator = {
  inject(ctx, carrier, setter) {
    const sc = trace.getSpanContext(ctx);
    if (!sc || !trace.isSpanContextValid(sc)) return;
    setter.set(carrier, TRACEPARENT, `00-${sc.traceId}-${sc.spanId}-0${Number(sc.traceFlags || 0).toString(16)}`);
    const state = sc.traceState?.serialize();
    if (state) setter.set(carrier, TRACESTATE, state);
  },
  extract(ctx, carrier, getter) {
    const header = first(getter.get(carrier, TRACEPARENT));
    const m = header ? TRACEPARENT_FORMAT.exec(header) : null;
    // Version ff is invalid; version 00 has nothing after the flags; later versions may.
    if (!m || m[1] === "ff" || (m[1] === "00" && m[5])) return ctx;
    const sc = { traceId: m[2], spanId: m[3], traceFlags: parseInt(m[4], 16) & 1, isRemote: true };
    if (!trace.isSpanContextValid(sc)) return ctx;
    const state = getter.get(carrier, TRACESTATE);
    const joined = Array.isArray(state) ? state.join(",") : state;
    return trace.setSpanContext(ctx, joined ? { ...sc, traceState: createTraceState(joined) } : sc);
  },
  fields: () => [TRACEPARENT, TRACESTATE],
};

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The application's propagator if it registered one, else W3C Trace Context. */
function propagator(): Pick<TextMapPropagator, "inject" | "extract"> {
  return propagation.fields().length ? propagation : w3cTraceContext;
}

/** Writes the context into a carrier (`set` writes one header). */
export function injectTraceContext<C>(ctx: Context, carrier: C, set: TextMapSetter<C>["set"]): void {
  propagator().inject(ctx, carrier, { set });
}

const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => c[k],
};

/** The context named by headers such as TaskAssignment.trace_context (the root context when they name none). */
export function extractTraceContext(headers: Record<string, string>): Context {
  return propagator().extract(ROOT_CONTEXT, headers, recordGetter);
}
