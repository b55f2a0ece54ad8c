// Traces: the OpenTelemetry SDK the server exports with, set up from the
// standard OTEL_* environment variables, and the server span of a submit.
// The spans of runs and attempts are in run-spans.ts.
//
// Nothing is exported unless the environment asks for it: with no
// OTEL_TRACES_EXPORTER and no OTLP endpoint set, the server creates no SDK and
// records through the OpenTelemetry API's global tracer provider: the no-op
// one (spans cost a property check: see run-spans.ts), or the provider an
// application embedding `startServer` registered (the tests register one with
// an in-memory exporter). The OpenTelemetry spec defaults OTEL_TRACES_EXPORTER
// to "otlp"; a server that sent spans to localhost:4318 because nobody said
// otherwise would be a surprise, so here the default is none.
//
// Context travels as W3C Trace Context (`traceparent`, `tracestate`): in the
// gRPC metadata of SubmitRun/BatchSubmitRuns (what OpenTelemetry's gRPC
// instrumentation sends in every language), in the runs row, and in each
// TaskAssignment. The server always uses the W3C propagator itself, whatever
// the global one is: these are wire formats, not a choice of the process.

import type * as grpc from "@grpc/grpc-js";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";

export const TRACER_NAME = "@pipewright/server";
const TRACER_VERSION = "0.1.0";

/** W3C Trace Context headers, as stored with a run and carried in an assignment. */
export type TraceHeaders = Record<string, string>;

export const w3c = new W3CTraceContextPropagator();

/** The tracer the server records with, and how to flush what it holds. */
export interface ServerTracing {
  readonly tracer: Tracer;
  /** Exporters configured from the environment (empty: the global tracer provider is used, nothing set up here). */
  readonly exporters: readonly string[];
  /** Exports what is buffered and stops the SDK set up here (nothing when none was). */
  shutdown(): Promise<void>;
}

/**
 * Sets up trace export from OTEL_* variables (see the file's header):
 * OTEL_TRACES_EXPORTER (`otlp`, `console`, `none`, comma-separated), the
 * OTLP exporter's own OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout,
 * compression: read by the exporter), OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, and
 * OTEL_SDK_DISABLED. Set an OTLP endpoint alone and `otlp` is implied.
 */
export async function startTracing(env: NodeJS.ProcessEnv, processId: string, log: (line: string) => void): Promise<ServerTracing> {
  const names = exporterNames(env);
  if (names.length === 0) return { tracer: trace.getTracer(TRACER_NAME, TRACER_VERSION), exporters: [], shutdown: async () => {} };
  // Loaded only when exporting: the SDK and the exporter are ~2.5 MB of heap a server that does not trace need not carry.
  const [{ BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor }, { OTLPTraceExporter }, resources] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
  ]);
  const { defaultResource, detectResources, envDetector, resourceFromAttributes } = resources;
  const processors: SpanProcessor[] = [];
  for (const name of names) {
    if (name === "otlp") {
      const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL;
      if (protocol && protocol !== "http/protobuf") log(`traces: OTLP protocol ${protocol} is not supported, sending http/protobuf`);
      processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
    } else if (name === "console") processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
    else log(`traces: unknown OTEL_TRACES_EXPORTER ${JSON.stringify(name)} ignored (known: otlp, console, none)`);
  }
  // Later resources win: the environment's service name and attributes over ours.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": "pipewright-server", "service.instance.id": processId }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: processors });
  return {
    tracer: provider.getTracer(TRACER_NAME, TRACER_VERSION),
    exporters: names.filter((n) => n === "otlp" || n === "console"),
    shutdown: () => provider.shutdown().catch((err: Error) => log(`traces: flushing at stop: ${err.message}`)),
  };
}

/** The exporters the environment asks for; none unless it asks. */
export function exporterNames(env: NodeJS.ProcessEnv): string[] {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? "")) return [];
  const listed = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (listed.includes("none")) return [];
  if (listed.length) return [...new Set(listed)];
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? ["otlp"] : [];
}

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: (m) => Object.keys(m.getMap()),
  get: (m, key) => {
    const values = m.get(key);
    return values.length ? values.map(String) : undefined;
  },
};

/** The context a client sent in a call's metadata (the root context when it sent none). */
export function contextFromMetadata(metadata: grpc.Metadata | undefined): Context {
  return metadata ? w3c.extract(ROOT_CONTEXT, metadata, metadataGetter) : ROOT_CONTEXT;
}

/** The context W3C headers name (stored with a run, or carried in an assignment). */
export function contextFromHeaders(headers: TraceHeaders): Context {
  return w3c.extract(ROOT_CONTEXT, headers, {
    keys: (h) => Object.keys(h),
    get: (h, k) => h[k],
  });
}

/** The W3C headers of a context: empty when it holds no valid span context. */
export function headersOf(ctx: Context): TraceHeaders {
  const headers: TraceHeaders = {};
  w3c.inject(ctx, headers, { set: (h, k, v) => (h[k] = v) });
  return headers;
}

/**
 * The server span of a submit call (`pipewright.v1.RunService/SubmitRun`,
 * kind SERVER), a child of the context the client sent in the metadata.
 * `context` is what the runs it creates are children of.
 */
export function startSubmitSpan(tracer: Tracer, method: string, metadata: grpc.Metadata | undefined): { span: Span; context: Context } {
  const parent = contextFromMetadata(metadata);
  const span = tracer.startSpan(`pipewright.v1.RunService/${method}`, { kind: SpanKind.SERVER }, parent);
  if (span.isRecording()) span.setAttributes({ "rpc.system": "grpc", "rpc.service": "pipewright.v1.RunService", "rpc.method": method });
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a submit span: the runs it created, or the error it failed with. */
export function endSubmitSpan(span: Span, outcome: { runIds: string[] } | { error: unknown }): void {
  if (span.isRecording()) {
    if ("error" in outcome) {
      const e = outcome.error as { message?: string; code?: string };
      span.setStatus({ code: SpanStatusCode.ERROR, message: e?.message });
      if (e?.code) span.setAttribute("pipewright.error.code", e.code);
    } else if (outcome.runIds.length === 1) span.setAttribute("pipewright.run.id", outcome.runIds[0]);
    else span.setAttribute("pipewright.runs", outcome.runIds.length);
  }
  span.end();
}
