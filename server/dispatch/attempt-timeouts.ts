// Execution and heartbeat timeouts of the attempts this process's workers
// hold. Only the server can enforce them: a worker that hangs, or a task that
// ignores its AbortSignal, would otherwise hold its slot and its step for
// ever. An expired attempt fails with pipewright.Timeout (attempt-failures.ts),
// its worker is told to stop it, and its late result is dropped as stale.

import type { ResultSink } from "../engine/ports.js";
import { failAttempts, failureReason, type AttemptFailure, type FailureCause } from "./attempt-failures.js";
import type { CircuitGate } from "./circuit-gate.js";
import type { HeldAttempt, WorkerSession } from "./worker-session.js";
import type { Logger } from "../observe/logger.js";

/** How often deadlines are checked: an attempt fails up to this long after its timeout. */
const CHECK_INTERVAL_MS = 100;

export class AttemptTimeouts {
  /** Held attempts that have a timeout to watch. */
  private readonly watched = new Set<{ session: WorkerSession; held: HeldAttempt }>();
  private timer?: NodeJS.Timeout;
  private expired = 0;

  constructor(
    private readonly circuits: CircuitGate,
    private readonly sink: ResultSink,
    private readonly log: Logger,
  ) {}

  /** Attempts failed by an execution or heartbeat timeout so far. */
  get timedOut(): number {
    return this.expired;
  }

  start(): void {
    this.timer = setInterval(() => this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Watches an attempt just handed to `session`, if it has a timeout. */
  watch(session: WorkerSession, held: HeldAttempt): void {
    if (held.executionMs || held.heartbeatMs) this.watched.add({ session, held });
  }

  /** Fails attempts past their execution or heartbeat timeout, and tells their worker to stop. */
  check(now = Date.now()): void {
    const failed: AttemptFailure[] = [];
    for (const w of this.watched) {
      const { session, held } = w;
      // Finished, re-queued or already failed: nothing left to time.
      if (session.held.get(`${held.runUid}/${held.step}`) !== held || held.expired) {
        this.watched.delete(w);
        continue;
      }
      const cause = overdue(held, now);
      if (!cause) continue;
      held.expired = true;
      this.watched.delete(w);
      this.expired++;
      held.series.timedOut.inc();
      held.series.execution.observe((now - held.deliveredAt) / 1000);
      this.circuits.record(session.namespace, held, "failure");
      session.cancel([held], failureReason(cause));
      failed.push({ runId: held.runId, runUid: held.runUid, step: held.step, attempt: held.attempt, cause });
      this.log.warn(
        { run_id: held.runUid, step: held.step, attempt: held.attempt, task: held.task, worker_id: session.id, timeout: cause.kind, limit_ms: cause.limitMs },
        `attempt timed out: ${failureReason(cause)}`,
      );
    }
    failAttempts(this.sink, failed, now);
  }
}

/** The timeout `held` is past at `now`, if any (both: the execution timeout is the one reported). */
function overdue(held: HeldAttempt, now: number): Extract<FailureCause, { limitMs: number }> | undefined {
  if (held.executionMs && now - held.deliveredAt > held.executionMs) return { kind: "executionTimeout", limitMs: held.executionMs };
  if (held.heartbeatMs && now - held.lastHeartbeat > held.heartbeatMs) return { kind: "heartbeatTimeout", limitMs: held.heartbeatMs };
  return undefined;
}
