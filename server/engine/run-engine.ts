// The orchestrator: owns the active runs of this process in memory (each as a
// RunMachine), applies what happens to them, and persists every change with
// group commit before anything leaves the process.
//
// The rule that keeps crashes harmless: an effect (a task handed to a worker,
// a reply to a client, a waiter woken) happens only after the transaction
// that recorded its cause has committed. A crash before the commit loses
// nothing that anybody has seen; the queue rows and the event log say exactly
// where each run stands, and replaying the log rebuilds it.
//
// This file is the front door (submit, results, controls, reads, lifecycle)
// and owns the group committer. The rooms behind it:
//   run-registry.ts   the runs held here: load, replay, reload, let go
//   batch-builder.ts  items applied to machines, effects turned into writes
//   batch-writer.ts   the batch written in one statement, the dispatch plan
//   commit-loop.ts    fast and careful commits, failures, after the commit
//   run-reads.ts      GetRun, WaitRun(s), WatchRun
//   peers.ts          other processes: adoption, inboxes, remote waits
//   deadlines.ts      run deadlines and waits for a worker
//   ports.ts          what the engine and the dispatcher exchange

import type { Tracer } from "@opentelemetry/api";
import type { Run, RunEvent, Value } from "@pipewright/protocol";
import type { TimeoutDefaults } from "../core/assignment-codec.js";
import { PipewrightError } from "../core/errors.js";
import { RunMachine, type MachineConfig, type SignalOutcome } from "../core/run-machine.js";
import { Metrics } from "../observe/metrics.js";
import type { Sql } from "../store/database.js";
import { deleteFinishedRun, namespacesOf } from "../store/run-store.js";
import { sendEventToWaiters } from "../store/event-waits.js";
import { encodeArrival } from "./event-codec.js";
import { BatchBuilder } from "./batch-builder.js";
import { BatchWriter } from "./batch-writer.js";
import { CommitLoop } from "./commit-loop.js";
import { expiredWaits } from "./deadlines.js";
import { attemptAssigned } from "../observe/run-spans.js";
import { GroupCommitter } from "./group-committer.js";
import { orderKey, startOf, type Item, type PreparedSubmit, type SignalSent, type SubmitOutcome } from "./items.js";
import { pauseForOthers } from "./pause-for-others.js";
import { Parking } from "./parking.js";
import { Peers } from "./peers.js";
import type { DispatchPort, IncomingResult, ResultSink } from "./ports.js";
import { RunReads } from "./run-reads.js";
import { RunRegistry } from "./run-registry.js";
import type { Logger } from "../observe/logger.js";

export interface EngineConfig {
  machine: MachineConfig;
  processId: string;
  /** Lease given to a worker with each attempt, renewed by its heartbeats. */
  leaseMs: number;
  /** Timeouts of calls that set none. */
  timeouts: TimeoutDefaults;
  /** A server process silent this long is dead: its runs are taken over. */
  processTimeoutMs: number;
  /** A wait on a run another process owns also reads the database this often (default 1000). */
  remoteWaitPollMs?: number;
  /** Batches committed at once (default 4). */
  concurrentBatches?: number;
  log: Logger;
  /** Where runs and commits are counted (default: a registry of its own, exposed nowhere). */
  metrics?: Metrics;
  /** Records the spans of runs and attempts (observe/run-spans.ts; default: the global tracer provider's). */
  tracer?: Tracer;
  /** A run that has only waited this long (ms), with nothing due sooner, leaves memory (engine/parking.ts); 0: never. Default 30 s. */
  parkWaitsOverMs?: number;
}

export const DEFAULT_PARK_WAITS_OVER_MS = 30_000;

/** What the engine counts, for GetServerStatus. */
export interface EngineStats {
  readonly activeRuns: number;
  /** Results dropped because their attempt was no longer current (fencing). */
  readonly staleResults: number;
  /** Attempts failed by a wait timeout since start (the dispatcher counts the others). */
  readonly timedOut: number;
  /** Runs parked (they only wait) and loaded again, since start (engine/parking.ts). */
  readonly parked: number;
  readonly unparked: number;
}

/** A wait this late (its timer fired, or should have, and it did not end) is woken again (WakeTimers.late in wake-timers.ts). */
const LATE_WAKE_MS = 5000;

/** Runs with at least this many tasks are built and started before their batch, with pauses. */
const START_APART_TASKS = 2000;

export class RunEngine {
  private readonly registry: RunRegistry;
  private readonly peers: Peers;
  private readonly reads: RunReads;
  private readonly builder: BatchBuilder;
  private readonly loop: CommitLoop;
  private readonly committer: GroupCommitter<Item>;
  private readonly parking: Parking;
  private closed = false;
  private timedOut = 0;
  private sweepTimer?: NodeJS.Timeout;
  private readonly metrics: Metrics;

  constructor(
    private readonly sql: Sql,
    dispatch: DispatchPort,
    private readonly config: EngineConfig,
  ) {
    const { log, processId } = config;
    const metrics = (this.metrics = config.metrics ?? new Metrics());
    const lookAtInbox = () => {
      if (!this.closed) this.committer.add({ kind: "inbox" });
    };
    this.committer = new GroupCommitter<Item>(
      (items, lock) => this.loop.flush(items, lock),
      (item) => orderKey(item, (uid) => this.registry.idOf(uid)),
      config.concurrentBatches ?? 4,
    );
    this.registry = new RunRegistry(
      sql,
      { machine: config.machine, processId, log, metrics },
      {
        deadline: (run) => this.committer.add({ kind: "control", uid: run.uid, action: "timeout", reason: "", resolve: () => {}, reject: () => {} }),
        wake: (run) => this.committer.add({ kind: "control", uid: run.uid, action: "wake", reason: "", resolve: () => {}, reject: () => {} }),
        loaded: (run) => this.parking.consider(run, false),
        poke: () => dispatch.poke(),
      },
    );
    this.peers = new Peers(
      sql,
      this.registry,
      { processId, processTimeoutMs: config.processTimeoutMs, remoteWaitPollMs: config.remoteWaitPollMs ?? 1000, log },
      lookAtInbox,
    );
    this.parking = new Parking(
      sql,
      this.registry,
      { processId, parkWaitsOverMs: config.parkWaitsOverMs ?? DEFAULT_PARK_WAITS_OVER_MS, log },
      (run) => this.committer.add({ kind: "park", run }),
      lookAtInbox,
    );
    this.reads = new RunReads(sql, this.registry, this.peers, dispatch, { machine: config.machine, log }, () => this.committer.idle());
    this.builder = new BatchBuilder(this.registry, dispatch, config, () => this.committer.add({ kind: "inbox" }));
    const writer = new BatchWriter(sql, this.registry, dispatch, config, () => this.peers.any);
    this.loop = new CommitLoop({
      sql,
      registry: this.registry,
      peers: this.peers,
      builder: this.builder,
      writer,
      reads: this.reads,
      dispatch,
      committer: this.committer,
      parking: this.parking,
      metrics,
      log,
    });
  }

  /**
   * Where the dispatcher sends results, and changes of running tasks only
   * this process sees (nothing is stored for them), for the run's watchers:
   * an attempt handed to a worker, the progress its task reports.
   */
  readonly sink: ResultSink = {
    results: (results) => this.results(results),
    running: (runId, step, attempt, workerId) => {
      attemptAssigned(this.registry.byId(runId)?.trace, step, attempt, workerId);
      this.reads.liveStepEvent(runId, step);
    },
    progress: (runId, step, progress) => this.reads.liveStepEvent(runId, step, progress),
  };

  // ---- lifecycle -----------------------------------------------------------

  /** Loads every active run and replays its events: the state after a restart. */
  async recover(): Promise<number> {
    let total = 0;
    for (let n = await this.adoptOrphans(); n > 0; n = await this.adoptOrphans()) total += n;
    return total;
  }

  /** Takes over active runs no live process owns (see Peers.adoptOrphans). */
  adoptOrphans(): Promise<number> {
    return this.peers.adoptOrphans();
  }

  /**
   * Starts the periodic work: wait-timeout sweeps, adopting runs of dead
   * processes, and reading the inbox (woken at once by a notification; the
   * periodic look is the safety net for a missed one).
   */
  async start(sweepEveryMs = 500): Promise<void> {
    let ticks = 0;
    this.sweepTimer = setInterval(() => {
      this.sweepWaits().catch((err) => this.config.log.warn({ err }, `wait-timeout sweep: ${err.message}`));
      if (++ticks % 2 === 0) {
        this.committer.add({ kind: "inbox" });
        this.parking.loadDue().catch((err) => this.config.log.warn({ err }, `loading parked runs due: ${err.message}`));
        this.parking.sweep();
        this.registry.wakes.late(Date.now(), LATE_WAKE_MS);
        this.adoptOrphans().catch((err) => this.config.log.warn({ err }, `adopting runs: ${err.message}`));
        this.peers.refresh().catch((err) => this.config.log.warn({ err }, `looking for other processes: ${err.message}`));
      }
    }, sweepEveryMs);
    this.sweepTimer.unref();
    await this.peers.start();
  }

  /** Stops taking work and waits for what is pending to be committed. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    await this.peers.stop();
    await this.committer.idle();
    this.registry.clearTimers();
    this.registry.endTraces();
  }

  /** Resolves once everything received so far is committed (tests, shutdown). */
  idle(): Promise<void> {
    return this.committer.idle();
  }

  stats(): EngineStats {
    return Object.freeze({
      activeRuns: this.registry.size,
      staleResults: this.builder.staleResults,
      timedOut: this.timedOut,
      parked: this.parking.parked,
      unparked: this.parking.unparked,
    });
  }

  /** Fails the attempts that waited too long for a worker (pipewright.Timeout, fenced as any result). */
  private async sweepWaits(): Promise<void> {
    const results = await expiredWaits(this.sql, (id) => this.registry.byId(id), this.config.timeouts, this.config.log);
    if (results.length) {
      this.timedOut += results.length;
      this.results(results);
    }
  }

  // ---- inputs --------------------------------------------------------------

  async submit(batch: PreparedSubmit[]): Promise<SubmitOutcome[]> {
    if (this.closed) throw new PipewrightError("UNAVAILABLE", "the server is shutting down");
    // A big run's machine is built and started here, yielding to the event loop every
    // ~10 ms: inside the batch it held the loop for hundreds of milliseconds (100,000
    // branches: ~300 ms building and starting), and everybody else's requests with it.
    for (const p of batch) {
      if (p.taskCount < START_APART_TASKS || p.started) continue;
      const createdAt = Date.now();
      p.started = { ...(await RunMachine.start(p.pipeline, this.config.machine, startOf(p, createdAt), pauseForOthers)), createdAt };
    }
    return new Promise((resolve, reject) => this.committer.add({ kind: "submit", batch, resolve, reject }));
  }

  results(results: IncomingResult[]): void {
    this.committer.addAll(results.map((result) => ({ kind: "result" as const, result })));
  }

  async control(uid: string, action: "cancel" | "pause" | "resume", reason = ""): Promise<Run> {
    if (this.closed) throw new PipewrightError("UNAVAILABLE", "the server is shutting down");
    if (!this.registry.knows(uid) && !(await this.parking.loadIfParkedHere(uid))) return this.peers.forwardControl(uid, action, reason);
    return new Promise((resolve, reject) => this.committer.add({ kind: "control", uid, action, reason, resolve, reject }));
  }

  /**
   * RunService.SignalRun. `outcome` is known when this process owns the run
   * (held, or parked here: loaded first); a signal for a run another process
   * owns goes through its inbox, and is
   * answered once applied there.
   */
  async signal(uid: string, signal: SignalSent): Promise<{ run: Run; outcome?: SignalOutcome }> {
    if (this.closed) throw new PipewrightError("UNAVAILABLE", "the server is shutting down");
    if (!this.registry.knows(uid) && !(await this.parking.loadIfParkedHere(uid))) return { run: await this.peers.forwardControl(uid, "signal", "", signal) };
    return new Promise((resolve, reject) =>
      this.committer.add({ kind: "control", uid, action: "signal", reason: "", signal, resolve: (run, outcome) => resolve({ run, outcome }), reject }),
    );
  }

  /**
   * An event was published in `namespace`: every run with a step waiting for
   * its name hears of it, through its owner's inbox (whichever process owns
   * it). Idempotent by event id: delivered again, it ends no more waits.
   * Returns how many runs were told.
   */
  deliverEvent(namespace: string, event: { id: string; name: string; payload: Value }): Promise<number> {
    return sendEventToWaiters(this.sql, namespace, event.name, encodeArrival(event));
  }

  // ---- deletion ------------------------------------------------------------

  /** DeleteRun: a finished run and everything stored with it. NOT_FOUND, or FAILED_PRECONDITION for a run not finished. */
  async deleteRun(uid: string): Promise<void> {
    const refusal = `run ${uid} has not finished: cancel it first, then delete it once it has ended`;
    // Held here: active, or finished by a commit whose after-work (waiters, the recent cache) is not done yet.
    if (this.registry.knows(uid)) throw new PipewrightError("FAILED_PRECONDITION", refusal);
    const result = await deleteFinishedRun(this.sql, uid);
    if (result === "unknown") throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    if (result === "active") throw new PipewrightError("FAILED_PRECONDITION", refusal);
    this.registry.forget(uid);
    this.metrics.runsDeleted.inc();
    this.config.log.info({ run_id: uid, runs_deleted: 1 }, `deleted run ${uid} (DeleteRun)`);
  }

  /** Retention (retention.ts): runs finished before this time (ms since the epoch) are no longer answered from memory. */
  forgetFinishedBefore(cutoffMs: number): number {
    return this.registry.forgetFinishedBefore(cutoffMs);
  }

  /** Runs deleted elsewhere (retention.ts) are no longer answered from memory. */
  forgetRuns(uids: string[]): void {
    for (const uid of uids) this.registry.forget(uid);
  }

  // ---- reads ---------------------------------------------------------------

  /**
   * The namespaces of these runs (unknown ones are left out): from memory for
   * the runs held or recently finished here, one query for the rest. The API
   * checks a caller's namespace with it before any read or control of a run.
   */
  async namespacesOf(uids: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const rest: string[] = [];
    for (const uid of uids) {
      const known = this.registry.recent(uid)?.namespace ?? this.registry.held(uid)?.namespace;
      if (known) out.set(uid, known);
      else rest.push(uid);
    }
    if (rest.length) for (const [uid, ns] of await namespacesOf(this.sql, rest)) out.set(uid, ns);
    return out;
  }

  getRun(uid: string, full: boolean): Promise<Run> {
    return this.reads.getRun(uid, full);
  }

  waitRun(uid: string, timeoutMs: number, signal?: AbortSignal): Promise<Run> {
    return this.reads.waitRun(uid, timeoutMs, signal);
  }

  waitRuns(uids: string[], timeoutMs: number, signal?: AbortSignal): Promise<Run[]> {
    return this.reads.waitRuns(uids, timeoutMs, signal);
  }

  watch(uid: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<RunEvent> {
    return this.reads.watch(uid, afterSeq, signal);
  }
}
