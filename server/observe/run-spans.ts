// The spans of a run and of its attempts, kept by the engine with the run it
// holds (OwnedRun.trace). Plain functions of a RunTrace: the engine calls them
// where it applies what happens to a run; nothing here knows the engine.
//
//   pipewright run              (INTERNAL) from accepted to finished; a child of the submit span
//   └─ pipewright attempt TASK  (CLIENT)   one try of a step, from queued to its result,
//                                          the queue wait included (events: queued, assigned)
//      └─ the worker's span (pipewright execute TASK, SERVER), from the assignment's trace_context
//
// Costs nothing for a run nobody traces: such a run has no RunTrace (one
// property check per dispatch and result). When the run is traced but this
// server records nothing (the client sent a context, no SDK here), attempts
// get no span of their own: their assignments carry the run's context, so the
// workers' spans still join the client's trace.
//
// The run span lives in the memory of the process that accepted the run. A
// process that reloads the run (a restart after a crash, or adopting the runs
// of a dead process) has only the run span's context, stored in the runs row:
// its attempt spans are children of that context, in the same trace, while the
// run span itself, never ended, is never exported (its children show with a
// missing parent). Attempts queued before the crash keep their dead attempt
// span as parent, for the same reason.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from "@opentelemetry/api";
import { contextFromHeaders, headersOf, type TraceHeaders } from "./tracing.js";

export interface RunTrace {
  /** The run's span, held by the process that accepted the run; unset for a run reloaded from its row. */
  readonly span?: Span;
  /** The context attempts are children of: the run span's. */
  readonly context: Context;
  /** The run span's W3C headers: stored with the run; the assignments' when attempts are not recorded. */
  readonly headers: TraceHeaders;
  /** Whether spans are recorded here (attempt spans are made only then; found out by the first one of a reloaded run). */
  recording: boolean;
  /** Open attempt spans, by step. */
  readonly attempts: Map<number, Span>;
}

/** Outcome of an attempt, as its span tells it. */
export type AttemptEnd =
  | { outcome: "value" | "pipeline"; attempt: number }
  | { outcome: "error"; attempt: number; errorType: string; message: string }
  | { outcome: "cancelled" | "interrupted" };

/**
 * The span of a run being accepted, a child of `parent` (the submit span's
 * context). Undefined when nothing traces the run: no span recorded here and
 * no context from the client.
 */
export function startRunTrace(
  tracer: Tracer,
  parent: Context | undefined,
  run: { uid: string; name: string; taskCount: number },
  at: number,
): RunTrace | undefined {
  const span = tracer.startSpan("pipewright run", { kind: SpanKind.INTERNAL, startTime: at }, parent ?? ROOT_CONTEXT);
  const recording = span.isRecording();
  if (!recording && !trace.isSpanContextValid(span.spanContext())) return undefined;
  if (recording) {
    span.setAttribute("pipewright.run.id", run.uid);
    if (run.name) span.setAttribute("pipewright.run.name", run.name);
    span.setAttribute("pipewright.run.tasks", run.taskCount);
  }
  const context = trace.setSpan(parent ?? ROOT_CONTEXT, span);
  return { span: recording ? span : undefined, context, headers: headersOf(context), recording, attempts: new Map() };
}

/** The trace of a run reloaded from its row (restart, adoption): its attempts are children of the stored context. */
export function resumeRunTrace(traceparent: string | null, tracestate: string | null): RunTrace | undefined {
  if (!traceparent) return undefined;
  const headers: TraceHeaders = tracestate ? { traceparent, tracestate } : { traceparent };
  const context = contextFromHeaders(headers);
  if (!trace.getSpanContext(context)) return undefined;
  return { context, headers, recording: true, attempts: new Map() };
}

/**
 * Starts the span of one try of a step, queued now; returns the headers its
 * assignment carries (the run's, when attempts are not recorded here).
 */
export function startAttempt(
  tracer: Tracer,
  rt: RunTrace,
  runUid: string,
  d: { step: number; retry: number; path: string; notBefore: number },
  task: string,
  queue: string,
): TraceHeaders {
  if (!rt.recording) return rt.headers;
  rt.attempts.get(d.step)?.end(); // a dispatch a failed commit left behind, applied again
  const span = tracer.startSpan(`pipewright attempt ${task}`, { kind: SpanKind.CLIENT }, rt.context);
  if (!span.isRecording()) {
    rt.recording = false; // nothing records here: the run's context it is, from now on
    return rt.headers;
  }
  span.setAttributes({
    "pipewright.run.id": runUid,
    "pipewright.task.name": task,
    "pipewright.step": d.step,
    "pipewright.step.path": d.path,
    "pipewright.queue": queue || "default",
    "pipewright.retry_number": d.retry,
  });
  const delay = d.notBefore - Date.now();
  span.addEvent("queued", delay > 0 ? { "pipewright.retry_delay_ms": Math.round(delay) } : undefined);
  rt.attempts.set(d.step, span);
  return headersOf(trace.setSpan(rt.context, span));
}

/** An attempt of the step was handed to a worker of this process (again, after a lost worker). */
export function attemptAssigned(rt: RunTrace | undefined, step: number, attempt: number, workerId: string): void {
  rt?.attempts.get(step)?.addEvent("assigned", { "pipewright.attempt": attempt, "pipewright.worker.id": workerId });
}

/** The step's current attempt ended: its result applied, or it was cancelled. */
export function endAttempt(rt: RunTrace | undefined, step: number, end: AttemptEnd): void {
  const span = rt?.attempts.get(step);
  if (!span) return;
  rt!.attempts.delete(step);
  span.setAttribute("pipewright.outcome", end.outcome);
  if ("attempt" in end) span.setAttribute("pipewright.attempt", end.attempt);
  if (end.outcome === "error") {
    span.setAttribute("error.type", end.errorType);
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${end.errorType}: ${end.message}` });
  }
  span.end();
}

/**
 * The run finished (committed), moved to another process (`state` "moved"),
 * or this server stopped before it finished ("stopped": the run goes on after
 * the restart, its later attempts children of this span through the stored
 * context): its span ends, and any attempt still open with it.
 */
export function endRunTrace(rt: RunTrace | undefined, state: string, error?: { type: string; message: string }): void {
  if (!rt) return;
  const left = state === "moved" || state === "stopped" ? "interrupted" : "cancelled";
  for (const step of [...rt.attempts.keys()]) endAttempt(rt, step, { outcome: left });
  const span = rt.span;
  if (!span) return;
  span.setAttribute("pipewright.run.state", state);
  if (error) {
    span.setAttribute("error.type", error.type);
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.type}: ${error.message}` });
  }
  span.end();
}
