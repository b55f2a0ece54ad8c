// The worker side of the server: sessions over WorkerService.Connect, flow
// control by slots, claims from the task queue, results to the engine,
// heartbeats and leases, cancellation and drain. proto/PROTOCOL.md is the
// contract this file implements.

import { randomUUID } from "node:crypto";
import { create, fromBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { receivedBytes, RefusedMessageError } from "@pipewright/protocol";
import { setLongTimeout, type LongTimeout } from "@pipewright/protocol";
import { ErrorTypes, PROTOCOL_VERSION } from "@pipewright/protocol";
import { fieldBytes } from "@pipewright/protocol";
import {
  ConnectResponseSchema,
  DrainRequestSchema,
  TaskAssignmentSchema,
  WelcomeSchema,
  type ConnectRequest,
  type ConnectResponse,
  type Hello,
  type TaskAssignment,
  type TaskResult,
  TaskResultSchema,
} from "@pipewright/protocol";
import { TaskErrorSchema, type Value } from "@pipewright/protocol";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { PipewrightError } from "../core/errors.js";
import type { Sql } from "../store/database.js";
import * as queue from "../store/task-queue.js";
import type { DispatchPort, IncomingResult, Reservation, ResultSink } from "../engine/ports.js";
import { CircuitBreakers, verdictOf, type Circuit, type CircuitConfig, type Verdict } from "../core/circuit-breaker.js";
import { claimProbe, loadCircuits, saveCircuit } from "../store/circuit-store.js";
import { servedElsewhere, type Served } from "../store/process-registry.js";
import { normalizeQueue, WorkerSession, type HeldAttempt } from "./worker-session.js";
import { valuesEqual } from "../core/values.js";
import { PayloadResolver } from "./payload-resolver.js";
import { pushAll } from "../core/arrays.js";
import { isUnavailable } from "../store/database-errors.js";
import { assignmentSize } from "../core/assignment-codec.js";

const MAX_SLOTS = 10_000;

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
  log: (line: string) => void;
}

interface SessionReservation extends Reservation {
  session: WorkerSession;
}

export class Dispatcher implements DispatchPort {
  private readonly sessions = new Map<string, WorkerSession>();
  private claiming = false;
  private pokedWhileClaiming = false;
  private draining = false;
  private timer?: NodeJS.Timeout;
  private timeoutTimer?: NodeJS.Timeout;
  /** The earliest known time a delayed row becomes ready (retry backoff). */
  private wakeAt?: number;
  private wakeTimer?: LongTimeout;
  /** Results whose attempt the session did not hold (late, or after a cancel or timeout). */
  staleResults = 0;
  /** Attempts failed by an execution or heartbeat timeout. */
  timedOut = 0;
  /** Attempts put back in the queue because their worker went away. */
  requeued = 0;
  /** Held attempts that have a timeout to watch. */
  private readonly watched = new Set<{ session: WorkerSession; held: HeldAttempt }>();
  readonly breakers: CircuitBreakers;
  private readonly payloads: PayloadResolver;
  /** Claims whose answers were lost with their connection (see claim). */
  private readonly doubtfulClaims: { workerId: string; token: string }[] = [];

  constructor(
    private readonly sql: Sql,
    private readonly config: DispatcherConfig,
    /** Where results and news of running attempts go: the engine. */
    private readonly sink: ResultSink,
  ) {
    this.breakers = new CircuitBreakers(config.circuits);
    this.payloads = new PayloadResolver(sql);
  }

  private ticks = 0;

  /** Starts the periodic work, and listens for ready rows written by other server processes. */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.tick(), this.config.pollIntervalMs);
    this.timer.unref();
    this.timeoutTimer = setInterval(() => this.checkTimeouts(), 100);
    this.timeoutTimer.unref();
    await this.refreshServedElsewhere();
    const ready = await this.sql.listen("pipewright_ready", () => {
      if (!this.draining) this.poke();
    });
    // A run owned by another process was cancelled while one of our workers holds its attempt.
    const cancels = await this.sql.listen("pipewright_cancel", (payload) => {
      const [processId, runId, step, attempt] = JSON.parse(payload) as [string, number, number, number];
      if (processId === this.config.processId) this.cancel([{ runId, step, attempt, processId, workerId: null }], "the run was cancelled");
    });
    this.unlisten = async () => {
      await ready.unlisten();
      await cancels.unlisten();
    };
  }

  private unlisten?: () => Promise<void>;

  get workerCount(): number {
    return this.sessions.size;
  }

  /** The connected sessions, oldest first (AdminService.ListWorkers). */
  workers(): WorkerSession[] {
    return [...this.sessions.values()].sort((a, b) => a.connectedAt - b.connectedAt);
  }

  /** What the workers connected here serve (written with the process's heartbeat). */
  served(): Served[] {
    const keys = new Map<string, Served>();
    for (const s of this.sessions.values()) for (const t of s.tasks) for (const q of s.queues) keys.set(JSON.stringify([t, q]), [t, q]);
    return [...keys.values()];
  }

  /**
   * Whether a connected worker, here or at another process, serves `task`
   * on `queue` (other processes' workers as of their last heartbeat, read
   * at most every 2 s).
   */
  serves(task: string, queueName: string): boolean {
    const q = normalizeQueue(queueName);
    for (const s of this.sessions.values()) if (s.serves(task, q)) return true;
    return this.servedElsewhere.has(JSON.stringify([task, q]));
  }

  private servedElsewhere = new Set<string>();

  private async refreshServedElsewhere(): Promise<void> {
    this.servedElsewhere = new Set((await servedElsewhere(this.sql, this.config.processId, this.config.heartbeatIntervalMs * 4 + 10_000)).map((s) => JSON.stringify(s)));
  }

  /** The latest progress reported for running steps of a run, by step (held by this process's workers). */
  progressOf(runId: number): Map<number, Value> {
    const out = new Map<number, Value>();
    for (const s of this.sessions.values()) for (const h of s.held.values()) if (h.runId === runId && h.progress) out.set(h.step, h.progress);
    return out;
  }

  // ---- the Connect stream ----------------------------------------------------

  /** Serves one Connect call until it ends. */
  async connect(call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>): Promise<void> {
    const iterator = call[Symbol.asyncIterator]();
    const first = await Promise.race([
      iterator.next(),
      new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 10_000).unref()),
    ]);
    if (first === "timeout" || first.done) throw new PipewrightError("INVALID_ARGUMENT", "a worker must send hello first, within 10 s");
    const msg = first.value as ConnectRequest;
    if (msg.kind.case !== "hello") throw new PipewrightError("INVALID_ARGUMENT", `the first message must be hello, got ${msg.kind.case ?? "nothing"}`);
    if (this.draining) throw new PipewrightError("UNAVAILABLE", "the server is shutting down; connect again later");
    const hello = msg.kind.value;
    checkHello(hello);
    const session = new WorkerSession(randomUUID(), hello, call);
    this.sessions.set(session.id, session);
    session.write(
      create(ConnectResponseSchema, {
        kind: {
          case: "welcome",
          value: create(WelcomeSchema, { workerId: session.id, heartbeatInterval: durationFromMs(this.config.heartbeatIntervalMs), protocolVersion: PROTOCOL_VERSION }),
        },
      }),
    );
    this.config.log(`worker ${session.id} connected: ${hello.workerName || "unnamed"}, ${hello.slots} slots, tasks ${hello.taskNames.join(",")}`);
    this.poke();
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } catch (err) {
          // A message refused before decoding ends the session with its status (the
          // worker's attempts are re-queued like at any disconnect).
          if (err instanceof RefusedMessageError) throw err;
          break; // the stream broke (worker crashed or cancelled): a disconnect like any other
        }
        if (next.done) break;
        this.handle(session, next.value as ConnectRequest);
      }
    } finally {
      await this.close(session);
    }
  }

  private handle(session: WorkerSession, msg: ConnectRequest): void {
    session.lastSeen = Date.now();
    switch (msg.kind.case) {
      case "results": {
        // Each result's bytes as received become its event's body, unencoded again.
        const raw = receivedBytes(msg);
        const container = raw ? fieldBytes(raw, 2)[0] : undefined;
        this.acceptResults(session, msg.kind.value.results, container ? fieldBytes(container, 1) : undefined);
        return;
      }
      case "heartbeat": {
        const now = Date.now();
        for (const p of msg.kind.value.running) {
          const held = p.key ? session.held.get(`${p.key.runId}/${p.key.stepId}`) : undefined;
          if (!held || held.attempt !== p.key!.attempt) continue;
          held.lastHeartbeat = now;
          if (p.progress && !valuesEqual(p.progress, held.progress)) {
            held.progress = p.progress;
            this.sink.progress(held.runId, held.step, p.progress);
          }
        }
        this.renewLeases(session);
        return;
      }
      case "drain":
        session.state = "draining";
        return;
      case "hello":
        this.config.log(`worker ${session.id} sent a second hello; ignored`);
        return;
      default:
        this.config.log(`worker ${session.id} sent an unknown message; ignored`);
    }
  }

  private acceptResults(session: WorkerSession, results: TaskResult[], raw?: Uint8Array[]): void {
    const now = Date.now();
    const out: IncomingResult[] = [];
    for (const [i, r] of results.entries()) {
      const k = r.key;
      const held = k ? session.held.get(`${k.runId}/${k.stepId}`) : undefined;
      if (!k || !held || held.attempt !== k.attempt) {
        this.staleResults++;
        continue;
      }
      session.held.delete(`${k.runId}/${k.stepId}`);
      if (held.expired) {
        this.staleResults++; // already failed by its timeout
        continue;
      }
      out.push({ runId: held.runId, step: held.step, attempt: held.attempt, result: r, raw: raw?.length === results.length ? raw[i] : undefined, receivedAt: now });
      this.recordOutcome(held, verdictOf(r.outcome));
    }
    if (out.length) this.sink.results(out);
    this.poke();
  }

  private renewLeases(session: WorkerSession): void {
    const now = Date.now();
    if (session.held.size === 0 || now - session.lastLeaseRenewal < this.config.leaseMs / 3) return;
    session.lastLeaseRenewal = now;
    queue.extendLeases(this.sql, session.id, this.config.leaseMs).catch((err) => this.config.log(`renewing leases of ${session.id}: ${err.message}`));
  }

  private async close(session: WorkerSession): Promise<void> {
    if (session.state === "closed") return;
    session.state = "closed";
    this.sessions.delete(session.id);
    // Its attempts go back to the queue at once; a result it sent before
    // breaking is still accepted if the attempt was not handed out again.
    try {
      const lost = await queue.requeueWorker(this.sql, session.id);
      this.config.log(`worker ${session.id} disconnected${lost.length ? `; ${lost.length} attempts re-queued` : ""}`);
      this.lost(lost);
    } catch (err) {
      this.config.log(`re-queueing the attempts of ${session.id}: ${(err as Error).message} (the lease reaper will)`);
    }
    this.poke();
  }

  /**
   * Attempts put back because their worker or server went away. Re-running is
   * the point (at-least-once), but an attempt that keeps killing its workers
   * fails with pipewright.WorkerLost after maxLostAttempts, so it cannot take
   * the fleet down forever; the retry policy then decides.
   */
  lost(attempts: queue.LostAttempt[]): void {
    this.requeued += attempts.length;
    const now = Date.now();
    const failed: IncomingResult[] = [];
    for (const a of attempts) {
      if (a.lostCount < this.config.maxLostAttempts) continue;
      const error = create(TaskErrorSchema, { type: ErrorTypes.workerLost, message: `the attempt lost its worker ${a.lostCount} times (limit ${this.config.maxLostAttempts})` });
      failed.push({ runId: a.runId, step: a.step, attempt: a.attempt, receivedAt: now, result: create(TaskResultSchema, { outcome: { case: "error", value: error } }) });
    }
    if (failed.length) this.sink.results(failed);
    this.poke();
  }

  // ---- DispatchPort (called by the engine) ------------------------------------

  reserve(task: string, queueName: string): Reservation | undefined {
    if (this.draining || this.breakers.blocked(task)) return undefined;
    let best: WorkerSession | undefined;
    for (const s of this.sessions.values()) {
      if (s.free > 0 && s.serves(task, queueName) && (!best || s.free > best.free)) best = s;
    }
    if (!best) return undefined;
    best.reserved++;
    return { workerId: best.id, session: best } as SessionReservation;
  }

  release(r: Reservation): void {
    (r as SessionReservation).session.reserved--;
    this.poke();
  }

  deliver(r: Reservation, task: queue.ClaimedTask): void {
    const session = (r as SessionReservation).session;
    session.reserved--;
    if (session.state === "closed") return; // its row is re-queued by close()
    this.send(session, task);
  }

  cancel(attempts: queue.CancelledAttempt[], reason: string): void {
    const bySession = new Map<WorkerSession, HeldAttempt[]>();
    for (const a of attempts) {
      const candidates = a.workerId ? [this.sessions.get(a.workerId)] : [...this.sessions.values()];
      for (const s of candidates) {
        if (!s) continue;
        for (const h of s.held.values()) {
          if (h.runId === a.runId && h.step === a.step) {
            let list = bySession.get(s);
            if (!list) bySession.set(s, (list = []));
            list.push(h);
          }
        }
      }
    }
    for (const [s, list] of bySession) s.cancel(list, reason);
  }

  pokeAt(time: number): void {
    if (this.wakeAt !== undefined && this.wakeAt <= time) return;
    this.wakeTimer?.clear();
    this.wakeAt = time;
    const wake = () => {
      this.wakeAt = undefined;
      this.poke();
    };
    this.wakeTimer = setLongTimeout(wake, time - Date.now(), { unref: true });
  }

  poke(): void {
    if (this.claiming) {
      this.pokedWhileClaiming = true;
      return;
    }
    void this.claimLoop();
  }

  // ---- claims ------------------------------------------------------------------

  private async claimLoop(): Promise<void> {
    this.claiming = true;
    try {
      do {
        this.pokedWhileClaiming = false;
        await this.undoDoubtfulClaims();
        if (this.breakers.enabled && !this.draining) await this.sendProbes();
        for (const s of [...this.sessions.values()]) {
          if (this.draining || s.free <= 0) continue;
          const tasks = [...s.tasks].filter((t) => !this.breakers.blocked(t));
          if (tasks.length === 0) continue;
          // The slots being claimed for are reserved meanwhile, so that the
          // engine's fast path cannot promise them a second time.
          const claimed: queue.ClaimedTask[] = [];
          for (const queueName of s.queues) {
            const limit = s.free;
            if (limit <= 0) break;
            s.reserved += limit;
            try {
              pushAll(claimed, await this.claim({ workerId: s.id, tasks, queue: queueName, limit }));
            } finally {
              s.reserved -= limit;
            }
            if (s.state === "closed") break;
            for (const c of claimed.splice(0)) this.send(s, c);
          }
          if (s.state === "closed") this.lost(await queue.requeueWorker(this.sql, s.id));
        }
      } while (this.pokedWhileClaiming);
    } catch (err) {
      this.config.log(`claiming tasks: ${(err as Error).message}`);
    } finally {
      this.claiming = false;
    }
  }

  /**
   * A claim, named by a token. If its connection breaks, PostgreSQL may have
   * committed it all the same: its rows would stay held by a worker that
   * never got them. They are put back (by token) once the database answers.
   */
  private async claim(r: Pick<queue.ClaimRequest, "workerId" | "tasks" | "queue" | "limit">): Promise<queue.ClaimedTask[]> {
    const token = queue.claimToken();
    try {
      return await queue.claim(this.sql, { ...r, processId: this.config.processId, leaseMs: this.config.leaseMs, token });
    } catch (err) {
      if (isUnavailable(err)) this.doubtfulClaims.push({ workerId: r.workerId, token });
      throw err;
    }
  }

  /** Undoes the claims whose answers were lost (see claim); throws, keeping them, while the database is away. */
  private async undoDoubtfulClaims(): Promise<void> {
    while (this.doubtfulClaims.length) {
      const { workerId, token } = this.doubtfulClaims[0];
      const back = await queue.undoClaim(this.sql, workerId, token);
      this.doubtfulClaims.shift();
      if (back) this.config.log(`${back} attempts claimed for worker ${workerId} as the database went away were put back (the claim's answer was lost)`);
    }
  }

  // ---- circuit breakers -------------------------------------------------------

  private recordOutcome(held: HeldAttempt, verdict: Verdict): void {
    const changed = this.breakers.record(held.task, verdict, Date.now(), attemptKey(held));
    if (changed) this.persistCircuit(changed);
  }

  private persistCircuit(c: Circuit): void {
    if (c.state === "open") this.config.log(`circuit of task ${c.task} opened after ${c.failures} failures in a row`);
    if (c.state === "closed") this.config.log(`circuit of task ${c.task} closed`);
    this.breakers.savingStarted(c.task);
    saveCircuit(this.sql, c).then(
      (updatedAt) => this.breakers.saved(c.task, updatedAt),
      (err) => {
        this.breakers.saved(c.task, undefined);
        this.config.log(`saving the circuit of ${c.task}: ${err.message}`);
      },
    );
    if (c.state === "closed") this.poke();
    else if (c.probeAt !== undefined) this.pokeAt(c.probeAt);
  }

  /** Hands out one probe attempt for each circuit whose cool-down is over (if this process wins it). */
  private async sendProbes(): Promise<void> {
    for (const task of this.breakers.dueProbes(Date.now())) {
      const s = [...this.sessions.values()].find((x) => x.free > 0 && x.tasks.has(task));
      if (!s) continue;
      const nextProbeAt = await claimProbe(this.sql, task, this.breakers.config.cooldownMs);
      if (nextProbeAt === undefined) continue; // another process sends it
      s.reserved++;
      let probe: queue.ClaimedTask | undefined;
      try {
        for (const queueName of s.queues) {
          [probe] = await this.claim({ workerId: s.id, tasks: [task], queue: queueName, limit: 1 });
          if (probe) break;
        }
      } finally {
        s.reserved--;
      }
      const c = this.breakers.takeProbe(task, probe ? `${probe.runUid}/${probe.step}/${probe.attempt}` : undefined, nextProbeAt);
      this.persistCircuit(c);
      if (probe) {
        this.config.log(`circuit of task ${task}: probe sent`);
        if (s.state === "closed") this.lost(await queue.requeueWorker(this.sql, s.id));
        else this.send(s, probe);
      }
    }
  }

  /** Shares the breakers' states with the other server processes. */
  async syncCircuits(): Promise<void> {
    if (!this.breakers.enabled) return;
    for (const c of await loadCircuits(this.sql)) this.breakers.adopt(c);
    const next = this.breakers.nextProbeAt();
    if (next !== undefined) this.pokeAt(next);
  }

  private send(session: WorkerSession, c: queue.ClaimedTask): void {
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
        this.config.log(`reading the payloads of run ${c.runUid} step ${c.step}: ${err.message}; closing worker ${session.id}'s session`);
        session.end();
      },
    );
  }

  /** The assignment of a claimed row with its big payloads back in, tried a few times (the database may be restarting). */
  private async resolvePayloads(c: queue.ClaimedTask): Promise<TaskAssignment> {
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
  private hand(session: WorkerSession, c: queue.ClaimedTask, assignment: TaskAssignment): void {
    const now = Date.now();
    const held: HeldAttempt = {
      runId: c.runId,
      runUid: c.runUid,
      step: c.step,
      attempt: c.attempt,
      task: c.task,
      deliveredAt: now,
      lastHeartbeat: now,
      executionMs: durationMs(assignment.executionTimeout),
      heartbeatMs: durationMs(assignment.heartbeatTimeout),
    };
    if (held.executionMs || held.heartbeatMs) this.watched.add({ session, held });
    session.assign(held, assignment, c.size ?? assignmentSize(assignment));
    this.sink.running(c.runId, c.step);
  }

  /** Fails attempts past their execution or heartbeat timeout, and tells their worker to stop. */
  private checkTimeouts(): void {
    const now = Date.now();
    const failed: IncomingResult[] = [];
    for (const w of this.watched) {
      const { session, held } = w;
      if (session.held.get(`${held.runUid}/${held.step}`) !== held || held.expired) {
        this.watched.delete(w);
        continue;
      }
      let why: string | undefined;
      if (held.executionMs && now - held.deliveredAt > held.executionMs) why = `ran longer than its execution timeout of ${held.executionMs} ms`;
      else if (held.heartbeatMs && now - held.lastHeartbeat > held.heartbeatMs) why = `no heartbeat for longer than its heartbeat timeout of ${held.heartbeatMs} ms`;
      if (!why) continue;
      held.expired = true;
      this.watched.delete(w);
      this.timedOut++;
      this.recordOutcome(held, "failure");
      session.cancel([held], why);
      const error = create(TaskErrorSchema, { type: ErrorTypes.timeout, message: `attempt ${held.attempt} ${why}` });
      failed.push({ runId: held.runId, step: held.step, attempt: held.attempt, receivedAt: now, result: create(TaskResultSchema, { key: { runId: held.runUid, stepId: held.step, attempt: held.attempt }, outcome: { case: "error", value: error } }) });
    }
    if (failed.length) this.sink.results(failed);
  }

  /** Periodic: claim what became due, drop silent workers, share circuit states. */
  private tick(): void {
    this.syncCircuits().catch((err) => this.config.log(`loading circuit breakers: ${err.message}`));
    if (++this.ticks % 4 === 0) this.refreshServedElsewhere().catch((err) => this.config.log(`reading what other processes serve: ${err.message}`));
    const silentAfter = this.config.heartbeatIntervalMs * 3;
    const now = Date.now();
    for (const s of this.sessions.values()) {
      if (now - s.lastSeen > silentAfter) {
        this.config.log(`worker ${s.id} silent for ${now - s.lastSeen} ms; closing its session`);
        void this.close(s);
      }
    }
    this.poke();
  }

  // ---- shutdown ------------------------------------------------------------------

  /**
   * Asks every worker to drain and waits (up to `graceMs`) until they hold
   * nothing; then stops. What is still held afterwards is re-queued by the
   * workers' disconnects (or by the lease reaper of another process).
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.timer);
    clearInterval(this.timeoutTimer);
    await this.unlisten?.().catch(() => {});
    for (const s of this.sessions.values()) {
      s.state = s.state === "closed" ? "closed" : "draining";
      s.write(create(ConnectResponseSchema, { kind: { case: "drain", value: create(DrainRequestSchema, { reason: "server shutting down" }) } }));
    }
    const until = Date.now() + graceMs;
    while (Date.now() < until && [...this.sessions.values()].some((s) => s.held.size > 0)) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function attemptKey(h: HeldAttempt): string {
  return `${h.runUid}/${h.step}/${h.attempt}`;
}

function durationMs(d: Duration | undefined): number | undefined {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) || undefined : undefined;
}

function checkHello(h: Hello): void {
  const problems: string[] = [];
  if (h.protocolVersion !== PROTOCOL_VERSION) problems.push(`protocol_version: this server speaks ${PROTOCOL_VERSION}, got ${h.protocolVersion}`);
  if (h.taskNames.length === 0) problems.push("task_names: must not be empty");
  if (h.slots < 1 || h.slots > MAX_SLOTS) problems.push(`slots: must be between 1 and ${MAX_SLOTS}, got ${h.slots}`);
  h.queues.forEach((q, i) => {
    if (normalizeQueue(q).length > 200) problems.push(`queues[${i}]: must be at most 200 characters`);
  });
  if (problems.length) {
    const code = h.protocolVersion !== PROTOCOL_VERSION ? "FAILED_PRECONDITION" : "INVALID_ARGUMENT";
    throw new PipewrightError(code, `invalid hello: ${problems.join("; ")}`);
  }
}
