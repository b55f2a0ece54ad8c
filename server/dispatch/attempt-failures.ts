// The failures the dispatcher itself gives attempts, no worker having
// reported one: an execution or heartbeat timeout, an attempt that lost its
// worker too often. They reach the engine as results, like a worker's, so
// that one path (retry policy, exceptionally, circuit breakers, the event
// log) decides what follows. Built here, and only here, so that every such
// result has the same shape and its error type and message stay what users
// and tests read.

import { create } from "@bufbuild/protobuf";
import { ErrorTypes, TaskErrorSchema, TaskResultSchema } from "@pipewright/protocol";
import type { IncomingResult, ResultSink } from "../engine/ports.js";

/** Why the dispatcher fails an attempt. */
export type FailureCause =
  { kind: "executionTimeout"; limitMs: number } | { kind: "heartbeatTimeout"; limitMs: number } | { kind: "workerLost"; lostCount: number; limit: number };

export interface AttemptFailure {
  runId: number;
  step: number;
  attempt: number;
  /**
   * The run's public id, when the dispatcher holds the attempt (timeouts):
   * the result then carries the attempt's key, as a worker's would. An
   * attempt re-queued from the database (lost) is known by its row only.
   */
  runUid?: string;
  cause: FailureCause;
}

/** Each cause's error type; a new cause does not compile until it has one (and a reason below). */
const ERROR_TYPES: { [K in FailureCause["kind"]]: string } = {
  executionTimeout: ErrorTypes.timeout,
  heartbeatTimeout: ErrorTypes.timeout,
  workerLost: ErrorTypes.workerLost,
};

/** The cause in words, as the worker is told when asked to stop the attempt. */
export function failureReason(cause: FailureCause): string {
  switch (cause.kind) {
    case "executionTimeout":
      return `ran longer than its execution timeout of ${cause.limitMs} ms`;
    case "heartbeatTimeout":
      return `no heartbeat for longer than its heartbeat timeout of ${cause.limitMs} ms`;
    case "workerLost":
      return `lost its worker ${cause.lostCount} times (limit ${cause.limit})`;
  }
}

/** Fails these attempts: one error result each, sent to the engine together (one batch). */
export function failAttempts(sink: ResultSink, failures: AttemptFailure[], now = Date.now()): void {
  if (failures.length === 0) return;
  const results: IncomingResult[] = failures.map((f) => {
    const message = f.cause.kind === "workerLost" ? `the attempt ${failureReason(f.cause)}` : `attempt ${f.attempt} ${failureReason(f.cause)}`;
    const error = create(TaskErrorSchema, { type: ERROR_TYPES[f.cause.kind], message });
    const key = f.runUid !== undefined ? { runId: f.runUid, stepId: f.step, attempt: f.attempt } : undefined;
    return {
      runId: f.runId,
      step: f.step,
      attempt: f.attempt,
      receivedAt: now,
      result: create(TaskResultSchema, { key, outcome: { case: "error", value: error } }),
    };
  });
  sink.results(results);
}
