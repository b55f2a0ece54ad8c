// The span of one task execution on a worker: "pipewright execute TASK"
// (SERVER), a child of the attempt's span on the server, whose context the
// assignment carries (TaskAssignment.trace_context). The task function runs
// with it active, so the task's own spans (HTTP calls, queries...) are its
// children. Uses the OpenTelemetry API only: the worker application
// configures its SDK, as with any instrumented library; without one this is a
// non-recording span and costs next to nothing.

import { context, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { extractTraceContext } from "@pipewright/client";
import type { TaskAssignment, TaskError } from "@pipewright/protocol";

const tracer = trace.getTracer("@pipewright/worker", "0.1.0");

export interface TaskSpan {
  span: Span;
  /** The context the task runs in (its span active). */
  context: Context;
}

/** Starts the span of an assignment's execution. */
export function startTaskSpan(a: TaskAssignment): TaskSpan {
  const parent = Object.keys(a.traceContext).length ? extractTraceContext(a.traceContext) : context.active();
  const span = tracer.startSpan(`pipewright execute ${a.task}`, { kind: SpanKind.SERVER }, parent);
  if (span.isRecording()) {
    span.setAttributes({
      "pipewright.task.name": a.task,
      "pipewright.run.id": a.key?.runId ?? "",
      "pipewright.step": a.key?.stepId ?? 0,
      "pipewright.attempt": a.key?.attempt ?? 0,
      "pipewright.retry_number": a.retryNumber,
    });
  }
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends it: status ERROR with the error recorded as an exception when the task failed. */
export function endTaskSpan(t: TaskSpan, outcome: { case: "value" | "pipeline" | "error" | undefined; value?: unknown }): void {
  const { span } = t;
  if (span.isRecording()) {
    if (outcome.case === "error") {
      const e = outcome.value as TaskError;
      span.recordException({ name: e.type, message: e.message, stack: e.stack || undefined });
      span.setAttribute("error.type", e.type);
      span.setStatus({ code: SpanStatusCode.ERROR, message: `${e.type}: ${e.message}` });
    } else if (outcome.case) span.setAttribute("pipewright.outcome", outcome.case);
  }
  span.end();
}
