// Getting a claimed attempt to its worker: the engine's fast path (reserve a
// slot, then deliver or release it: engine/ports.ts), the claim loop's
// claims, and for both the payloads stored apart put back in before the
// assignment is queued on the session (which packs what is queued in one
// tick into few messages: worker-session.ts).

import { fromBinary } from "@bufbuild/protobuf";
import { optionalMs, TaskAssignmentSchema, type TaskAssignment } from "@pipewright/protocol";
import { assignmentSize } from "../core/assignment-codec.js";
import type { DispatchPort, Reservation, ResultSink } from "../engine/ports.js";
import type { Sql } from "../store/database.js";
import type { Metrics } from "../observe/metrics.js";
import type { ClaimedTask } from "../store/task-queue.js";
import type { AttemptTimeouts } from "./attempt-timeouts.js";
import type { CircuitGate } from "./circuit-gate.js";
import { PayloadResolver } from "./payload-resolver.js";
import type { WorkerRegistry } from "./worker-registry.js";
import type { HeldAttempt, WorkerSession } from "./worker-session.js";
import type { Logger } from "../observe/logger.js";

interface SessionReservation extends Reservation {
  session: WorkerSession;
}

export class Delivery {
  private readonly payloads: PayloadResolver;

  constructor(
    sql: Sql,
    private readonly registry: WorkerRegistry,
    private readonly circuits: CircuitGate,
    private readonly timeouts: AttemptTimeouts,
    private readonly sink: ResultSink,
    private readonly log: Logger,
    private readonly wake: Pick<DispatchPort, "poke">,
    private readonly metrics: Metrics,
  ) {
    this.payloads = new PayloadResolver(sql);
  }

  /** Holds a free slot of the local session serving `task` on `queueName` with the most free slots. */
  reserve(task: string, queueName: string): Reservation | undefined {
    if (this.registry.draining || this.circuits.blockedOn(queueName, task)) return undefined;
    let best: WorkerSession | undefined;
    for (const s of this.registry.all()) {
      if (s.free > 0 && s.serves(task, queueName) && (!best || s.free > best.free)) best = s;
    }
    if (!best) return undefined;
    best.reserved++;
    return { workerId: best.id, session: best } as SessionReservation;
  }

  release(r: Reservation): void {
    (r as SessionReservation).session.reserved--;
    this.wake.poke();
  }

  deliver(r: Reservation, task: ClaimedTask): void {
    const session = (r as SessionReservation).session;
    session.reserved--;
    if (session.state === "closed") return; // its row is re-queued by close()
    this.send(session, task);
  }

  /** Sends an attempt claimed for `session` (by the claim loop, or committed already claimed). */
  send(session: WorkerSession, c: ClaimedTask): void {
    if (c.message || !this.payloads.needs(c.assignment)) {
      this.hand(session, c, c.message ?? fromBinary(TaskAssignmentSchema, c.assignment));
      return;
    }
    // Its big payloads are stored apart (server/core/payload-refs.ts): read them
    // first. The slot is taken meanwhile, so nothing else is promised to it.
    session.reserved++;
    void this.resolvePayloads(c).then(
      (assignment) => {
        session.reserved--;
        if (session.state === "closed") return; // its row is re-queued by close()
        this.hand(session, c, assignment);
      },
      (err: Error) => {
        session.reserved--;
        // The attempt stays claimed by this worker, whose heartbeats would renew its lease
        // forever: end the session, which puts back everything it held.
        this.log.warn(
          { run_id: c.runUid, step: c.step, attempt: c.attempt, task: c.task, worker_id: session.id, err },
          `reading the payloads of run ${c.runUid} step ${c.step}: ${err.message}; closing worker ${session.id}'s session`,
        );
        session.end();
      },
    );
  }

  /** The assignment of a claimed row with its big payloads back in, tried a few times (the database may be restarting). */
  private async resolvePayloads(c: ClaimedTask): Promise<TaskAssignment> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.payloads.resolve(c.runId, c.assignment);
      } catch (err) {
        if (attempt >= 4) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  /** Gives a worker an attempt it now holds. */
  private hand(session: WorkerSession, c: ClaimedTask, assignment: TaskAssignment): void {
    const now = Date.now();
    const series = this.metrics.task(c.task, c.queue);
    series.dispatched.inc();
    series.queueWait.observe(Math.max(0, now - c.readyAt) / 1000);
    const held: HeldAttempt = {
      runId: c.runId,
      runUid: c.runUid,
      step: c.step,
      attempt: c.attempt,
      task: c.task,
      deliveredAt: now,
      lastHeartbeat: now,
      // A zero timeout means none, as an unset one does.
      executionMs: optionalMs(assignment.executionTimeout) || undefined,
      heartbeatMs: optionalMs(assignment.heartbeatTimeout) || undefined,
      series,
    };
    this.timeouts.watch(session, held);
    session.assign(held, assignment, c.size ?? assignmentSize(assignment));
    // Per attempt: debug, built only when debug is on (thousands a second).
    if (this.log.isLevelEnabled("debug"))
      this.log.debug({ run_id: c.runUid, step: c.step, attempt: c.attempt, task: c.task, worker_id: session.id }, "attempt assigned");
    this.sink.running(c.runId, c.step, c.attempt, session.id);
  }
}
