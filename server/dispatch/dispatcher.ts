// The worker side of the server: sessions over WorkerService.Connect, flow
// control by slots, claims from the task queue, results to the engine,
// heartbeats and leases, cancellation and drain. proto/PROTOCOL.md is the
// contract these files implement. This one wires the parts together and is
// what the engine (DispatchPort) and the server see:
//
//   worker-registry   sessions: handshake, what they serve, their end
//   worker-reports    results and heartbeats coming from sessions
//   claim-loop        ready rows claimed for sessions with free slots
//   delivery          reserve/deliver/release, payloads, assignments out
//   attempt-timeouts  execution and heartbeat timeouts
//   attempt-failures  the one way the dispatcher fails an attempt
//   circuit-gate      circuit breakers put to work
//   cancel-and-drain  asking workers to stop

import type * as grpc from "@grpc/grpc-js";
import type { ConnectRequest, ConnectResponse, Value } from "@pipewright/protocol";
import type { Circuit, CircuitConfig } from "../core/circuit-breaker.js";
import type { DispatchPort, Reservation, ResultSink } from "../engine/ports.js";
import { Metrics } from "../observe/metrics.js";
import { CHANNELS } from "../store/channels.js";
import type { Sql } from "../store/database.js";
import type { Served } from "../store/process-registry.js";
import * as queue from "../store/task-queue.js";
import { failAttempts } from "./attempt-failures.js";
import { AttemptTimeouts } from "./attempt-timeouts.js";
import { cancelAttempts, drainSessions } from "./cancel-and-drain.js";
import { CircuitGate } from "./circuit-gate.js";
import { ClaimLoop } from "./claim-loop.js";
import { Delivery } from "./delivery.js";
import { WorkerRegistry } from "./worker-registry.js";
import { WorkerReports } from "./worker-reports.js";
import { queueNames, type WorkerSession } from "./worker-session.js";
import { MAX_LINES_PER_EVENT, type Logger } from "../observe/logger.js";

export interface DispatcherConfig {
  processId: string;
  /** How often workers must send a heartbeat. */
  heartbeatIntervalMs: number;
  /** Lease given with each attempt; heartbeats renew it. */
  leaseMs: number;
  /** How often to look for ready rows nobody poked us about (retries coming due, other processes). */
  pollIntervalMs: number;
  /** Re-queues of one attempt (worker or server gone) before it fails with pipewright.WorkerLost. */
  maxLostAttempts: number;
  /** Circuit breakers per task name (threshold 0: off). */
  circuits: CircuitConfig;
  log: Logger;
  /** Where attempts are counted (default: a registry of its own, exposed nowhere). */
  metrics?: Metrics;
}

/** The dispatcher's counters since it started (AdminService.GetServerStatus adds the engine's). */
export interface DispatcherStats {
  /** Results whose attempt the session did not hold (late, or after a cancel or timeout). */
  readonly staleResults: number;
  /** Attempts failed by an execution or heartbeat timeout. */
  readonly timedOut: number;
  /** Attempts put back in the queue because their worker went away. */
  readonly requeued: number;
}

export class Dispatcher implements DispatchPort {
  private readonly registry: WorkerRegistry;
  private readonly reports: WorkerReports;
  private readonly circuitGate: CircuitGate;
  private readonly timeouts: AttemptTimeouts;
  private readonly delivery: Delivery;
  private readonly claims: ClaimLoop;
  private requeued = 0;
  private timer?: NodeJS.Timeout;
  private ticks = 0;
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly sql: Sql,
    private readonly config: DispatcherConfig,
    /** Where results and news of running attempts go: the engine. */
    private readonly sink: ResultSink,
  ) {
    const log = config.log;
    // The parts wake the claim loop through this facade (poke, pokeAt), which
    // keeps their imports one-way: none of them imports the claim loop.
    this.circuitGate = new CircuitGate(sql, config.circuits, log, this);
    this.registry = new WorkerRegistry(sql, config, {
      opened: () => this.poke(),
      results: (session, results, raw) => this.reports.results(session, results, raw),
      heartbeat: (session, running) => this.reports.heartbeat(session, running),
      closed: (session, drained) => this.sessionClosed(session, drained),
    });
    this.reports = new WorkerReports(sql, config, this.circuitGate, sink, this);
    this.timeouts = new AttemptTimeouts(this.circuitGate, sink, log);
    this.delivery = new Delivery(sql, this.registry, this.circuitGate, this.timeouts, sink, log, this, config.metrics ?? new Metrics());
    this.claims = new ClaimLoop(sql, config, this.registry, this.circuitGate, this.delivery, (attempts) =>
      this.lost(attempts, "its worker went away while it was being claimed"),
    );
  }

  /** Starts the periodic work, and listens for ready rows written by other server processes. */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.tick(), this.config.pollIntervalMs);
    this.timer.unref();
    this.timeouts.start();
    await this.registry.refreshServedElsewhere();
    const ready = await this.sql.listen(CHANNELS.ready, () => {
      if (!this.registry.draining) this.poke();
    });
    // A run owned by another process was cancelled while one of our workers holds its attempt.
    const cancels = await this.sql.listen(CHANNELS.cancel, (payload) => {
      const [processId, runId, step, attempt] = JSON.parse(payload) as [string, number, number, number];
      if (processId === this.config.processId) this.cancel([{ runId, step, attempt, processId, workerId: null }], "the run was cancelled");
    });
    this.unlisten = async () => {
      await ready.unlisten();
      await cancels.unlisten();
    };
  }

  /** A snapshot of the counters (frozen: read it again for newer numbers). */
  stats(): DispatcherStats {
    return Object.freeze({ staleResults: this.reports.staleResults, timedOut: this.timeouts.timedOut, requeued: this.requeued });
  }

  get workerCount(): number {
    return this.registry.size;
  }

  /** The connected sessions, oldest first (AdminService.ListWorkers). */
  workers(): WorkerSession[] {
    return this.registry.workers();
  }

  /** What the workers connected here serve (written with the process's heartbeat). */
  served(): Served[] {
    return this.registry.served();
  }

  serves(task: string, key: string): boolean {
    return this.registry.serves(task, key);
  }

  progressOf(runId: number): Map<number, Value> {
    return this.registry.progressOf(runId);
  }

  /** Serves one Connect call of a worker of `namespace` until it ends. */
  connect(call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>, namespace?: string): Promise<void> {
    return this.registry.connect(call, namespace);
  }

  private async sessionClosed(session: WorkerSession, drained: boolean): Promise<void> {
    // Its attempts go back to the queue at once; a result it sent before
    // breaking is still accepted if the attempt was not handed out again.
    const fields = { worker_id: session.id, worker_name: session.hello.workerName, queues: queueNames(session), slots: session.slots };
    try {
      const lost = await queue.requeueWorker(this.sql, session.id);
      // A worker that drained and left holding nothing stopped cleanly: info. One whose stream
      // broke or went silent (a crash, a network cut), or that left attempts behind, is lost: warn.
      if (drained && lost.length === 0) this.config.log.info({ ...fields, requeued: 0 }, `worker ${session.id} disconnected`);
      else this.config.log.warn({ ...fields, requeued: lost.length }, `worker ${session.id} lost; ${lost.length} attempts re-queued`);
      this.lost(lost, `worker ${session.id} went away`, session.id);
    } catch (err) {
      this.config.log.warn({ ...fields, err }, `worker ${session.id} lost; re-queueing its attempts failed: ${(err as Error).message} (the lease reaper will)`);
    }
    this.poke();
  }

  /**
   * Attempts put back because their worker or server went away. Re-running is
   * the point (at-least-once), but an attempt that keeps killing its workers
   * fails with pipewright.WorkerLost after maxLostAttempts, so it cannot take
   * the fleet down forever; the retry policy then decides.
   */
  lost(attempts: queue.LostAttempt[], why: string, workerId?: string): void {
    this.requeued += attempts.length;
    const limit = this.config.maxLostAttempts;
    const log = this.config.log;
    // One line per attempt (a worker with thousands of slots dying: the first ones, then a count).
    for (const a of attempts.slice(0, MAX_LINES_PER_EVENT)) {
      const fields = { run_id: a.runUid, step: a.step, attempt: a.attempt, task: a.task, worker_id: workerId, lost_count: a.lostCount, reason: why };
      if (a.lostCount >= limit) log.warn({ ...fields, limit }, `attempt failed with pipewright.WorkerLost: lost its worker ${a.lostCount} times (${why})`);
      else log.warn(fields, `attempt re-queued: ${why}`);
    }
    if (attempts.length > MAX_LINES_PER_EVENT)
      log.warn(
        { worker_id: workerId, attempts: attempts.length - MAX_LINES_PER_EVENT, reason: why },
        `${attempts.length - MAX_LINES_PER_EVENT} more attempts re-queued: ${why}`,
      );
    const failures = attempts
      .filter((a) => a.lostCount >= limit)
      .map((a) => ({ runId: a.runId, step: a.step, attempt: a.attempt, cause: { kind: "workerLost" as const, lostCount: a.lostCount, limit } }));
    failAttempts(this.sink, failures);
    this.poke();
  }

  // ---- DispatchPort (called by the engine) ------------------------------------

  reserve(task: string, queueName: string): Reservation | undefined {
    return this.delivery.reserve(task, queueName);
  }

  release(r: Reservation): void {
    this.delivery.release(r);
  }

  deliver(r: Reservation, task: queue.ClaimedTask): void {
    this.delivery.deliver(r, task);
  }

  cancel(attempts: queue.CancelledAttempt[], reason: string): void {
    cancelAttempts(this.registry, attempts, reason);
  }

  pokeAt(time: number): void {
    this.claims.pokeAt(time);
  }

  poke(): void {
    this.claims.poke();
  }

  // ---- circuit breakers -------------------------------------------------------

  /** Shares the breakers' states with the other server processes. */
  syncCircuits(): Promise<void> {
    return this.circuitGate.sync();
  }

  /** The circuit breakers known here (copies), for AdminService.ListCircuitBreakers. */
  circuits(): Circuit[] {
    return this.circuitGate.list();
  }

  /** Periodic: claim what became due, drop silent workers, share circuit states. */
  private tick(): void {
    this.syncCircuits().catch((err) => this.config.log.warn({ err }, `loading circuit breakers: ${err.message}`));
    if (++this.ticks % 4 === 0)
      this.registry.refreshServedElsewhere().catch((err) => this.config.log.warn({ err }, `reading what other processes serve: ${err.message}`));
    this.registry.closeSilent();
    this.poke();
  }

  /**
   * Asks every worker to drain and waits (up to `graceMs`) until they hold
   * nothing; then stops. What is still held afterwards is re-queued by the
   * workers' disconnects (or by the lease reaper of another process).
   */
  async drain(graceMs: number): Promise<void> {
    this.registry.stopAccepting();
    clearInterval(this.timer);
    this.timeouts.stop();
    await this.unlisten?.().catch(() => {});
    await drainSessions(this.registry, graceMs);
  }
}
