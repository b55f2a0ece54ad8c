// What workers report about the attempts they hold: results, forwarded to
// the engine (which fences them again against the queue), and heartbeats,
// which keep attempts alive (heartbeat timeouts), carry progress and renew
// the leases that tell other processes this worker still holds its rows.

import type { TaskProgress, TaskResult } from "@pipewright/protocol";
import { verdictOf } from "../core/circuit-breaker.js";
import { valuesEqual } from "../core/values.js";
import type { DispatchPort, IncomingResult, ResultSink } from "../engine/ports.js";
import type { Sql } from "../store/database.js";
import * as queue from "../store/task-queue.js";
import type { CircuitGate } from "./circuit-gate.js";
import type { WorkerSession } from "./worker-session.js";
import type { Logger } from "../observe/logger.js";

export interface WorkerReportsConfig {
  /** Lease given with each attempt; heartbeats renew it. */
  leaseMs: number;
  log: Logger;
}

export class WorkerReports {
  private stale = 0;

  constructor(
    private readonly sql: Sql,
    private readonly config: WorkerReportsConfig,
    private readonly circuits: CircuitGate,
    private readonly sink: ResultSink,
    private readonly wake: Pick<DispatchPort, "poke">,
  ) {}

  /** Results whose attempt the session did not hold (late, or after a cancel or timeout). */
  get staleResults(): number {
    return this.stale;
  }

  /** Results from `session`; `raw`: each one's bytes as received, when they could be cut out. */
  results(session: WorkerSession, results: TaskResult[], raw?: Uint8Array[]): void {
    const now = Date.now();
    // Per attempt: debug, and only built when debug is on (thousands of results a second).
    const debug = this.config.log.isLevelEnabled("debug");
    const out: IncomingResult[] = [];
    for (const [i, r] of results.entries()) {
      const k = r.key;
      const held = k ? session.held.get(`${k.runId}/${k.stepId}`) : undefined;
      if (!k || !held || held.attempt !== k.attempt) {
        this.stale++;
        if (debug) this.config.log.debug({ run_id: k?.runId, step: k?.stepId, attempt: k?.attempt, worker_id: session.id }, "stale result dropped");
        continue;
      }
      session.held.delete(`${k.runId}/${k.stepId}`);
      if (held.expired) {
        this.stale++; // already failed by its timeout
        if (debug)
          this.config.log.debug(
            { run_id: held.runUid, step: held.step, attempt: held.attempt, worker_id: session.id },
            "late result of a timed-out attempt dropped",
          );
        continue;
      }
      const series = held.series;
      (r.outcome.case === "error" ? series.failed : series.succeeded).inc();
      series.execution.observe((now - held.deliveredAt) / 1000);
      if (debug)
        this.config.log.debug(
          {
            run_id: held.runUid,
            step: held.step,
            attempt: held.attempt,
            task: held.task,
            worker_id: session.id,
            outcome: r.outcome.case,
            error_type: r.outcome.case === "error" ? r.outcome.value.type : undefined,
            duration_ms: now - held.deliveredAt,
          },
          "attempt finished",
        );
      out.push({
        runId: held.runId,
        step: held.step,
        attempt: held.attempt,
        result: r,
        raw: raw?.length === results.length ? raw[i] : undefined,
        receivedAt: now,
      });
      this.circuits.record(session.namespace, held, verdictOf(r.outcome));
    }
    if (out.length) this.sink.results(out);
    this.wake.poke();
  }

  /** A heartbeat from `session`, naming the attempts still running there. */
  heartbeat(session: WorkerSession, running: TaskProgress[]): void {
    const now = Date.now();
    for (const p of running) {
      const held = p.key ? session.held.get(`${p.key.runId}/${p.key.stepId}`) : undefined;
      if (!held || held.attempt !== p.key!.attempt) continue;
      held.lastHeartbeat = now;
      if (p.progress && !valuesEqual(p.progress, held.progress)) {
        held.progress = p.progress;
        this.sink.progress(held.runId, held.step, p.progress);
      }
    }
    this.renewLeases(session);
  }

  private renewLeases(session: WorkerSession): void {
    const now = Date.now();
    if (session.held.size === 0 || now - session.lastLeaseRenewal < this.config.leaseMs / 3) return;
    session.lastLeaseRenewal = now;
    queue
      .extendLeases(this.sql, session.id, this.config.leaseMs)
      .catch((err) => this.config.log.warn({ worker_id: session.id, err }, `renewing leases of ${session.id}: ${err.message}`));
  }
}
