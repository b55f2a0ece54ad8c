// The orchestrator: owns the active runs of this process in memory (each as a
// RunMachine), applies what happens to them, and persists every change with
// group commit before anything leaves the process.
//
// The rule that keeps crashes harmless: an effect (a task handed to a worker,
// a reply to a client, a waiter woken) happens only after the transaction
// that recorded its cause has committed. A crash before the commit loses
// nothing that anybody has seen; the queue rows and the event log say exactly
// where each run stands, and replaying the log rebuilds it.

import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Pipeline } from "@pipewright/protocol";
import { PipelineSchema } from "@pipewright/protocol";
import { RunEventSchema, RunState, type Run, type RunEvent } from "@pipewright/protocol";
import type { TaskError, Value } from "@pipewright/protocol";
import { TaskResultSchema, type TaskAssignment, type TaskResult } from "@pipewright/protocol";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { setLongTimeout, type LongTimeout } from "@pipewright/protocol";
import { minOf, pushAll } from "../core/arrays.js";
import { ErrorTypes, serverError } from "../core/values.js";
import { isUnavailable, storageProblem } from "../store/database-errors.js";
import { PipewrightError } from "../core/errors.js";
import { RunMachine, type Dispatch, type Effect, type MachineConfig, type RunInput } from "../core/run-machine.js";
import { stepStatusOf, stepStatuses, type LiveState } from "../core/step-statuses.js";
import type { TaskStep } from "../core/run-graph.js";
import { inTransaction, type Sql, type Tx } from "../store/database.js";
import * as runs from "../store/run-store.js";
import * as queue from "../store/task-queue.js";
import { BATCH_CHECK_FAILED, FINISHED_CHANNEL, OWNERSHIP_LOST, insertQueueRows, writeBatch, type BatchWrite, type BatchWriteResult, type NewRunRow } from "../store/batch-write.js";
import { adoptOrphanRuns, inboxEntryDone, readInbox, runsOwnedElsewhere, sendControl, type InboxEntry } from "../store/ownership.js";
import { livePeerCount } from "../store/process-registry.js";
import { encodeAssignment, type TimeoutDefaults } from "../core/assignment-codec.js";
import type { BlobData } from "../core/payload-refs.js";
import { pauseForOthers } from "./pause-for-others.js";
import { UnsureCommits } from "./unsure-commits.js";
import { insertBlobs } from "../store/payload-blobs.js";
import { decodeEvent, encodeEvent } from "./event-codec.js";
import { GroupCommitter } from "./group-committer.js";
import type { DispatchPort, IncomingResult, Reservation, ResultSink } from "./ports.js";
import { encodeFinalState, encodeOutcome, eventsOf, machineRunState, runFromMachine, runFromRow } from "./run-views.js";

export interface EngineConfig {
  machine: MachineConfig;
  processId: string;
  /** Lease given to a worker with each attempt, renewed by its heartbeats. */
  leaseMs: number;
  /** Timeouts of calls that set none. */
  timeouts: TimeoutDefaults;
  /** A server process silent this long is dead: its runs are taken over. */
  processTimeoutMs: number;
  /** Batches committed at once (default 4). */
  concurrentBatches?: number;
  log: (line: string) => void;
}

/** A submission checked by the API layer, ready to persist. */
export interface PreparedSubmit {
  requestId: string;
  requestHash: Uint8Array | null;
  name: string;
  pipeline: Pipeline;
  spec: Uint8Array;
  taskCount: number;
  runTimeoutMs: number;
  /** A big run's machine, built and started before its batch (see RunEngine.submit). */
  started?: { machine: RunMachine; effects: Effect[]; createdAt: number };
}

/** Runs with at least this many tasks are built and started before their batch, with pauses. */
const START_APART_TASKS = 2000;

export interface SubmitOutcome {
  run: Run;
  existing: boolean;
}

type Control = "cancel" | "pause" | "resume" | "timeout";

type Item =
  | { kind: "submit"; batch: PreparedSubmit[]; resolve: (r: SubmitOutcome[]) => void; reject: (e: unknown) => void }
  | { kind: "result"; result: IncomingResult }
  | { kind: "control"; uid: string; action: Control; reason: string; resolve: (run: Run) => void; reject: (e: unknown) => void }
  /** Look at this process's inbox (a notification came, or the periodic check). */
  | { kind: "inbox" }
  /** End a run FAILED with this error (it cannot go on: see RunMachine.abandon). */
  | { kind: "abandon"; runId: number; error: TaskError };

interface OwnedRun {
  id: number;
  uid: string;
  requestId: string;
  name: string;
  createdAt: number;
  deadline?: number;
  machine: RunMachine;
  nextSeq: number;
  /** The seq of its last event known committed (read from the log, or written by a batch that committed). */
  committedSeq: number;
  /** Called with the finished run, or with nothing when the run moved to another process. */
  waiters: Set<(run: Run | undefined) => void>;
  listeners: Set<(events: RunEvent[]) => void>;
  timer?: LongTimeout;
  /** Hashes (hex) of the big payloads stored for this run (see payload-refs.ts). */
  storedBlobs: Set<string>;
}

/** A queue row the batch will write, with its run (whose id a new run only gets on writing). */
interface PendingRow {
  run: OwnedRun;
  row: queue.QueueRow;
  /** The assignment as a message, for a local worker reserved for it. */
  message?: TaskAssignment;
  /** About the message's bytes (for packing assignments in one message to the worker). */
  size?: number;
  /** Not encoded yet (a row nobody is reserved for): encoded when written. */
  dispatch?: Dispatch;
}

/** Rows written with the batch's statement; the rest follow in chunks of this size (bounded memory for huge groups). */
const ROWS_PER_STATEMENT = 5000;

/**
 * Everything one batch decided, written in one statement and acted on after it.
 * "fast": results are assumed current and checked inside the statement;
 * "careful": results are fenced first, in a transaction (after a failed check).
 */
class Batch {
  constructor(
    readonly mode: "fast" | "careful",
    /** Holds a run for this batch (see GroupCommitter): false if another batch in flight holds it. */
    readonly lock: (key: string) => boolean,
  ) {}
  newRuns: { run: OwnedRun; row: NewRunRow }[] = [];
  completions: queue.AttemptKey[] = [];
  /** Attempt of each step whose result this batch applies, by `${uid}/${step}`. */
  resultAttempts = new Map<string, number>();
  /** Attempts retried at once, their rows reset in place (fast mode). */
  retries: PendingRow[] = [];
  rows: PendingRow[] = [];
  events: runs.StoredEvent[] = [];
  reservations = new Map<string, Reservation>();
  removals: { run: OwnedRun; step: number }[] = [];
  holds: { run: OwnedRun; held: boolean }[] = [];
  changed = new Set<OwnedRun>();
  dirty = new Set<OwnedRun>();
  liveEvents = new Map<OwnedRun, RunEvent[]>();
  after: (() => void)[] = [];
  /** Control items to retry next batch (they named a run created in this one). */
  deferred: Item[] = [];
  /** Results for runs another process owns, for its inbox. */
  foreign: { key: queue.AttemptKey; body: Uint8Array; receivedAt: Date }[] = [];
  /** Inbox entries applied by this batch. */
  inboxDone: number[] = [];
  /** Big payloads the written rows refer to, by `${run uid}/${hash}`. */
  blobs = new Map<string, BlobData & { run: OwnedRun }>();
  /** Steps whose result came through the inbox: their queue row is already gone. */
  preFenced = new Set<string>();
}

const key = (run: OwnedRun, step: number) => `${run.uid}/${step}`;
const EMPTY = new Uint8Array();

/** A starting process announces itself on this channel (payload: its id). */
const PEERS_CHANNEL = "pipewright_peers";

export class RunEngine {
  private readonly owned = new Map<number, OwnedRun>();
  private readonly byUid = new Map<string, number>();
  private readonly needsReload = new Set<number>();
  /** What failed commits may have written after all (see unsure-commits.ts). */
  private readonly unsure = new UnsureCommits();
  /** Batches being committed (their runs are ahead of the database). */
  private readonly inFlight = new Set<Batch>();
  /**
   * Runs that finished here lately, as answered to waits and reads (a client
   * typically submits, then waits): no trip to the database for them. Bounded
   * (oldest out first), so memory stays bounded by what is in flight.
   */
  private readonly recentlyFinished = new Map<string, Run>();
  private static readonly RECENTLY_FINISHED = 50_000;
  private readonly committer: GroupCommitter<Item>;
  private closed = false;
  /** Results dropped because their attempt was no longer current (fencing). */
  staleResults = 0;
  /** Attempts failed by a wait timeout since start (the dispatcher counts the others). */
  timedOut = 0;
  private sweepTimer?: NodeJS.Timeout;
  /** Other server processes are alive: announce finished runs to them (their clients may wait on our runs). */
  private peers = false;
  /** Waits here on runs another process owns, by run uid: woken by that process's announcement. */
  private readonly remoteWaits = new Map<string, Set<() => void>>();
  /**
   * How often a wait on a run owned elsewhere reads the database anyway: the
   * safety net for an announcement missed (a peer that started less than a
   * second ago does not announce to us yet). Tests lengthen it.
   */
  remoteWaitPollMs = 1000;

  constructor(
    private readonly sql: Sql,
    private readonly dispatch: DispatchPort,
    private readonly config: EngineConfig,
  ) {
    this.committer = new GroupCommitter(
      (items, lock) => this.flush(items, lock),
      (item) => this.orderKey(item),
      config.concurrentBatches ?? 4,
    );
  }

  /** Items of one run are committed in order: one batch in flight per run. */
  private orderKey(item: Item): string | undefined {
    switch (item.kind) {
      case "submit":
        return undefined;
      case "result":
        return `run:${item.result.runId}`;
      case "control": {
        const id = this.byUid.get(item.uid);
        return id ? `run:${id}` : `uid:${item.uid}`;
      }
      case "inbox":
        return "inbox";
      case "abandon":
        return `run:${item.runId}`;
    }
  }

  /** Whether a batch being committed (other than `batch`) holds changes of `run`. */
  private inFlightElsewhere(run: OwnedRun, batch: Batch | undefined): boolean {
    for (const b of this.inFlight) if (b !== batch && b.changed.has(run)) return true;
    return false;
  }

  // ---- lifecycle -----------------------------------------------------------

  /** Loads every active run and replays its events: the state after a restart. */
  async recover(): Promise<number> {
    let total = 0;
    for (let n = await this.adoptOrphans(); n > 0; n = await this.adoptOrphans()) total += n;
    return total;
  }

  /**
   * Takes over active runs no live process owns (their owner died, or this
   * is the first start) and rebuilds them from their event log.
   */
  async adoptOrphans(): Promise<number> {
    const ids = await adoptOrphanRuns(this.sql, this.config.processId, this.config.processTimeoutMs, 1000);
    if (ids.length === 0) return 0;
    try {
      await this.load(await runs.loadRunsByIds(this.sql, ids));
    } catch (err) {
      this.unsure.noteAdopted(ids); // they are ours now: nobody else will take them
      throw err;
    }
    this.committer.add({ kind: "inbox" });
    return ids.length;
  }

  /**
   * Rebuilds runs from their rows and logs and holds them. `reload`: runs this
   * process holds already (after a failed commit); one it let go meanwhile
   * stays let go.
   */
  private async load(rows: runs.RunRow[], reload = false): Promise<void> {
    const events = await runs.loadEvents(this.sql, rows.map((r) => r.id));
    const byRun = new Map<number, runs.StoredEvent[]>();
    for (const e of events) {
      let list = byRun.get(e.runId);
      if (!list) byRun.set(e.runId, (list = []));
      list.push(e);
    }
    for (const row of rows) {
      const held = this.owned.get(row.id);
      if (reload && !held) continue;
      const lastSeq = byRun.get(row.id)?.at(-1)?.seq ?? 0;
      if (held && (this.inFlightElsewhere(held, undefined) || held.committedSeq > lastSeq)) {
        // A batch holding this run is being committed, or committed after the log was
        // read: what is in memory is ahead of what was read, and replacing it would
        // rewind the run (a result the database accepted would then be dropped as
        // stale, and the run wait for ever). That batch decides: committed, memory is
        // right; failed, it reloads the run.
        continue;
      }
      let machine: RunMachine;
      try {
        machine = replay(row, byRun.get(row.id) ?? [], this.config.machine);
      } catch (err) {
        // One damaged run must not keep the others (or the server) down, nor
        // linger RUNNING with nobody able to hold it: it ends FAILED.
        await this.endUnreplayable(row, err);
        continue;
      }
      const run: OwnedRun = {
        id: row.id,
        uid: row.uid,
        requestId: row.request_id ?? "",
        name: row.name,
        createdAt: row.created_at.getTime(),
        deadline: row.deadline?.getTime(),
        machine,
        nextSeq: lastSeq + 1,
        committedSeq: lastSeq,
        waiters: new Set(),
        listeners: new Set(),
        storedBlobs: new Set(),
      };
      const old = this.owned.get(row.id);
      if (old) {
        run.waiters = old.waiters;
        run.listeners = old.listeners;
        old.timer?.clear();
      }
      if (machine.result) {
        // Its end was committed after its row was read (the log says more than the row
        // did): there is nothing to hold. Held, it would never be let go (seen under load:
        // finished runs kept in memory for good).
        if (old) this.disown(old);
        const view = runFromMachine(run, machine);
        for (const w of run.waiters) w(view);
        continue;
      }
      this.own(run);
    }
  }

  /** Ends FAILED a run whose log cannot be replayed (its tasks leave the queue); wakes whoever waited on it here. */
  private async endUnreplayable(row: runs.RunRow, err: unknown): Promise<void> {
    const error = this.internalError(`rebuilding run ${row.uid} from its log`, err);
    const ended = await inTransaction(this.sql, async (tx) => {
      const done = await runs.endRun(tx, row.id, this.config.processId, RunState.FAILED, encodeOutcome({ error }));
      if (done) await queue.removeRunRows(tx, row.id);
      return done;
    });
    const old = this.owned.get(row.id);
    if (old) {
      this.disown(old);
      const final = ended ? await runs.loadRunByUid(this.sql, row.uid) : undefined;
      for (const w of old.waiters) w(final ? runFromRow(final) : undefined);
    }
  }

  private own(run: OwnedRun): void {
    this.owned.set(run.id, run);
    this.byUid.set(run.uid, run.id);
    if (run.deadline !== undefined && !run.timer && !run.machine.result) {
      const ms = Math.max(0, run.deadline - Date.now());
      const fire = () => this.committer.add({ kind: "control", uid: run.uid, action: "timeout", reason: "", resolve: () => {}, reject: () => {} });
      run.timer = setLongTimeout(fire, ms, { unref: true });
    }
  }

  private disown(run: OwnedRun): void {
    run.timer?.clear();
    this.owned.delete(run.id);
    this.byUid.delete(run.uid);
  }

  /**
   * Starts the periodic work: wait-timeout sweeps, adopting runs of dead
   * processes, and reading the inbox (woken at once by a notification; the
   * periodic look is the safety net for a missed one).
   */
  async start(sweepEveryMs = 500): Promise<void> {
    let ticks = 0;
    this.sweepTimer = setInterval(() => {
      this.sweepWaits().catch((err) => this.config.log(`wait-timeout sweep: ${err.message}`));
      if (++ticks % 2 === 0) {
        this.committer.add({ kind: "inbox" });
        this.adoptOrphans().catch((err) => this.config.log(`adopting runs: ${err.message}`));
        this.refreshPeers().catch((err) => this.config.log(`looking for other processes: ${err.message}`));
      }
    }, sweepEveryMs);
    this.sweepTimer.unref();
    await this.refreshPeers();
    const inbox = await this.sql.listen("pipewright_inbox", (owner) => {
      if (owner === this.config.processId && !this.closed) this.committer.add({ kind: "inbox" });
    });
    const finished = await this.sql.listen(FINISHED_CHANNEL, (uids) => {
      for (const uid of uids.split(",")) for (const wake of this.remoteWaits.get(uid) ?? []) wake();
    });
    // A process that starts says so: the others announce finished runs to it from then on (not after their next look).
    const arrivals = await this.sql.listen(PEERS_CHANNEL, (id) => {
      if (id !== this.config.processId) this.peers = true;
    });
    await this.sql`select pg_notify(${PEERS_CHANNEL}, ${this.config.processId})`;
    this.unlisten = async () => {
      await inbox.unlisten();
      await finished.unlisten();
      await arrivals.unlisten();
    };
  }

  private unlisten?: () => Promise<void>;

  private async refreshPeers(): Promise<void> {
    this.peers = (await livePeerCount(this.sql, this.config.processId, this.config.processTimeoutMs)) > 0;
  }

  /**
   * Sleeps until one of `uids` (runs owned elsewhere) is announced finished,
   * `ms` pass, or `signal` aborts. `shareWake` receives the wake-up function,
   * for other wakers (waitRuns: the runs it waits on that are held here).
   */
  private async sleepOnRemote(uids: string[], ms: number, signal?: AbortSignal, shareWake?: (wake: () => void) => void): Promise<void> {
    let wake = () => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    for (const uid of uids) {
      let set = this.remoteWaits.get(uid);
      if (!set) this.remoteWaits.set(uid, (set = new Set()));
      set.add(wake);
    }
    shareWake?.(wake);
    const timer = setTimeout(wake, Math.max(1, ms));
    const abort = () => wake();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await woken;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      for (const uid of uids) {
        const set = this.remoteWaits.get(uid);
        set?.delete(wake);
        if (set?.size === 0) this.remoteWaits.delete(uid);
      }
    }
  }

  /** Stops taking work and waits for what is pending to be committed. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    await this.unlisten?.().catch(() => {});
    await this.committer.idle();
    for (const run of this.owned.values()) run.timer?.clear();
  }

  get activeRuns(): number {
    return this.owned.size;
  }

  /** When a dispatched attempt fails for waiting too long for a worker, if ever. */
  private waitDeadline(d: Dispatch): Date | undefined {
    const ms = durationMs(d.call.options?.waitTimeout) ?? this.config.timeouts.waitMs;
    return ms > 0 ? new Date(Math.max(d.notBefore, Date.now()) + ms) : undefined;
  }

  /** Fails the attempts that waited too long for a worker (pipewright.Timeout, fenced as any result). */
  async sweepWaits(): Promise<void> {
    const expired = await queue.expiredWaits(this.sql, 1000);
    const now = Date.now();
    const results: IncomingResult[] = [];
    for (const k of expired) {
      const run = this.owned.get(k.runId);
      const step = run?.machine.graph.steps[k.step];
      if (!run || !step || step.kind !== "task" || !run.machine.isAwaitingResult(k.step)) continue;
      const ms = durationMs(step.call.options?.waitTimeout) ?? this.config.timeouts.waitMs;
      const error = serverError("Timeout", `waited more than ${ms} ms for a worker`);
      results.push({ runId: k.runId, step: k.step, attempt: k.attempt, receivedAt: now, result: create(TaskResultSchema, { outcome: { case: "error", value: error } }) });
    }
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
      p.started = { ...(await RunMachine.start(p.pipeline, this.config.machine, createdAt, pauseForOthers)), createdAt };
    }
    return new Promise((resolve, reject) => this.committer.add({ kind: "submit", batch, resolve, reject }));
  }

  results(results: IncomingResult[]): void {
    this.committer.addAll(results.map((result) => ({ kind: "result" as const, result })));
  }

  async control(uid: string, action: Exclude<Control, "timeout">, reason = ""): Promise<Run> {
    if (this.closed) throw new PipewrightError("UNAVAILABLE", "the server is shutting down");
    if (!this.byUid.has(uid)) return this.forwardControl(uid, action, reason);
    return new Promise((resolve, reject) => this.committer.add({ kind: "control", uid, action, reason, resolve, reject }));
  }

  /** A control for a run another process owns: through its inbox; answers once applied. */
  private async forwardControl(uid: string, action: Exclude<Control, "timeout">, reason: string): Promise<Run> {
    const row = await runs.loadRunByUid(this.sql, uid);
    if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    if (row.state >= RunState.SUCCEEDED) throw new PipewrightError("FAILED_PRECONDITION", `run ${uid} has already finished`);
    if (action === "pause" && row.state !== RunState.RUNNING) throw new PipewrightError("FAILED_PRECONDITION", `run ${uid} is not running, it cannot be paused`);
    if (action === "resume" && row.state !== RunState.PAUSED) throw new PipewrightError("FAILED_PRECONDITION", `run ${uid} is not paused`);
    const kind = action === "cancel" ? runs.EventKind.cancel : action === "pause" ? runs.EventKind.pause : runs.EventKind.resume;
    const entry = await sendControl(this.sql, row.id, kind, reason);
    for (const until = Date.now() + 10_000; Date.now() < until; ) {
      if (await inboxEntryDone(this.sql, entry)) return runFromRow((await runs.loadRunByUid(this.sql, uid))!);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new PipewrightError("UNAVAILABLE", `the ${action} of run ${uid} is recorded but its owner has not applied it yet; it will`);
  }

  /** Resolves once everything received so far is committed (tests, shutdown). */
  idle(): Promise<void> {
    return this.committer.idle();
  }

  // ---- reads ---------------------------------------------------------------

  async getRun(uid: string, full: boolean): Promise<Run> {
    const recent = full ? undefined : this.recentlyFinished.get(uid);
    if (recent) return recent;
    const id = this.byUid.get(uid);
    const run = id !== undefined ? this.owned.get(id) : undefined;
    if (run && [...this.inFlight].some((b) => b.changed.has(run))) {
      // What is in memory is ahead of the database until the batch commits: show only what is committed.
      await this.committer.idle();
      return this.getRun(uid, full);
    }
    if (run) {
      if (!full) return runFromMachine(run, run.machine);
      return runFromMachine(run, run.machine, stepStatuses(run.machine.graph, await this.liveState(run.id)));
    }
    const row = await runs.loadRunByUid(this.sql, uid);
    if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    if (!full) return runFromRow(row);
    const events = await runs.loadEvents(this.sql, [row.id]);
    let machine: RunMachine;
    try {
      machine = replay(row, events, this.config.machine);
    } catch (err) {
      this.config.log(`run ${row.uid}: its steps cannot be shown, its log does not replay: ${(err as Error).message}`);
      return runFromRow(row); // the row is authoritative: the run as stored, without its steps
    }
    return runFromRow(row, stepStatuses(machine.graph, await this.liveState(row.id)));
  }

  /** What the database and the dispatcher know of a run's tasks now: which run, their progress, which no worker serves. */
  private async liveState(runId: number): Promise<LiveState> {
    return {
      running: new Set(await queue.runningSteps(this.sql, runId)),
      progress: this.dispatch.progressOf(runId),
      waitingReason: (step) => this.waitingReason(step),
    };
  }

  /** Why a queued task is not running yet, when no worker anywhere serves it. */
  private waitingReason(step: TaskStep): string | undefined {
    const q = step.call.options?.queue || "";
    if (this.dispatch.serves(step.call.task, q)) return undefined;
    return `no connected worker serves task ${JSON.stringify(step.call.task)}${q && q !== "default" ? ` on queue ${JSON.stringify(q)}` : ""}`;
  }

  /**
   * Where the dispatcher sends results, and changes of running tasks only
   * this process sees (nothing is stored for them), for the run's watchers:
   * an attempt handed to a worker, the progress its task reports.
   */
  readonly sink: ResultSink = {
    results: (results) => this.results(results),
    running: (runId, step) => this.liveStepEvent(runId, step),
    progress: (runId, step, progress) => this.liveStepEvent(runId, step, progress),
  };

  /** The steps of a run held here that a worker holds now, as step events (seq 0), with their progress. */
  private async runningNow(run: OwnedRun): Promise<RunEvent[]> {
    const live = await this.liveState(run.id);
    const time = timestampFromMs(Date.now());
    return [...live.running].filter((step) => run.machine.graph.steps[step]).map((step) =>
      create(RunEventSchema, { runId: run.uid, seq: 0n, time, kind: { case: "step", value: stepStatusOf(run.machine.graph, step, live) } }),
    );
  }

  private liveStepEvent(runId: number, step: number, progress?: Value): void {
    const run = this.owned.get(runId);
    if (!run || run.listeners.size === 0 || !run.machine.graph.steps[step]) return;
    const status = stepStatusOf(run.machine.graph, step, { running: new Set([step]), progress: progress ? new Map([[step, progress]]) : undefined });
    // seq 0: not an event of the log (see WatchRunRequest.after_seq).
    const event = create(RunEventSchema, { runId: run.uid, seq: 0n, time: timestampFromMs(Date.now()), kind: { case: "step", value: status } });
    for (const l of run.listeners) l([event]);
  }

  /** Waits until the run finishes or `timeoutMs` passes; returns it either way. */
  async waitRun(uid: string, timeoutMs: number, signal?: AbortSignal): Promise<Run> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const recent = this.recentlyFinished.get(uid);
      if (recent) return recent;
      const id = this.byUid.get(uid);
      const run = id !== undefined ? this.owned.get(id) : undefined;
      // Held here: its waiters fire once the batch that finishes it commits
      // (even if it already finished in memory; the database may not say so yet).
      if (run) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return runFromMachine(run, run.machine);
        const finished = await new Promise<Run | undefined>((resolve) => {
          const done = (r: Run | undefined) => {
            clearTimeout(timer);
            run.waiters.delete(done);
            signal?.removeEventListener("abort", abort);
            resolve(r);
          };
          const abort = () => done(runFromMachine(run, run.machine));
          const timer = setTimeout(abort, remaining);
          signal?.addEventListener("abort", abort);
          run.waiters.add(done);
        });
        if (finished) return finished;
        continue; // the run moved to another process: follow it through the database
      }
      const row = await runs.loadRunByUid(this.sql, uid);
      if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
      if (row.state >= RunState.SUCCEEDED || Date.now() >= deadline || signal?.aborted) return runFromRow(row);
      // Owned by another process (or being reloaded here): look again once it announces the run finished.
      await this.sleepOnRemote([uid], Math.min(this.remoteWaitPollMs, deadline - Date.now()), signal);
    }
  }

  /**
   * Waits for several runs at once (the batch counterpart of waitRun): one
   * timer and one abort listener for all of them, waiters for the runs held
   * here, one query per look for the others. Returns them in order, finished
   * unless the timeout passed.
   */
  async waitRuns(uids: string[], timeoutMs: number, signal?: AbortSignal): Promise<Run[]> {
    const deadline = Date.now() + timeoutMs;
    // Filled, not sparse: every() skips the holes of `new Array(n)`, so "all finished" was true at once and callers spun.
    const out: (Run | undefined)[] = new Array(uids.length).fill(undefined);
    const attached = new Map<OwnedRun, (r: Run | undefined) => void>();
    let wake = () => {};
    // Woken once every run held here has reported (not at each one: that would rescan them all each time).
    let outstanding = 0;
    try {
      for (;;) {
        const elsewhere: number[] = [];
        for (let i = 0; i < uids.length; i++) {
          if (out[i]) continue;
          const recent = this.recentlyFinished.get(uids[i]);
          if (recent) {
            out[i] = recent;
            continue;
          }
          const id = this.byUid.get(uids[i]);
          const run = id !== undefined ? this.owned.get(id) : undefined;
          if (!run) {
            elsewhere.push(i);
            continue;
          }
          if (attached.has(run)) continue;
          const waiter = (r: Run | undefined) => {
            attached.delete(run);
            if (r) out[i] = r;
            if (--outstanding === 0 || !r) wake();
          };
          attached.set(run, waiter);
          outstanding++;
          run.waiters.add(waiter);
        }
        if (elsewhere.length) {
          const rows = await runs.loadRunsByUids(this.sql, elsewhere.map((i) => uids[i]));
          const byUid = new Map(rows.map((r) => [r.uid, r]));
          for (const i of elsewhere) {
            const row = byUid.get(uids[i]);
            if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uids[i]}`);
            if (row.state >= RunState.SUCCEEDED) out[i] = runFromRow(row);
          }
        }
        if (out.every((r) => r) || Date.now() >= deadline || signal?.aborted) break;
        // Runs held elsewhere: woken by their owners' announcements (or the safety-net poll).
        const stillElsewhere = elsewhere.filter((i) => !out[i]).map((i) => uids[i]);
        const ms = Math.min(deadline - Date.now(), stillElsewhere.length ? this.remoteWaitPollMs : 60_000);
        await this.sleepOnRemote(stillElsewhere, ms, signal, (w) => (wake = w));
      }
    } finally {
      for (const [run, waiter] of attached) run.waiters.delete(waiter);
    }
    // Not finished in time: their current state.
    const missing = uids.flatMap((uid, i) => (out[i] ? [] : [uid]));
    if (missing.length) {
      const rows = new Map((await runs.loadRunsByUids(this.sql, missing)).map((r) => [r.uid, r]));
      uids.forEach((uid, i) => {
        if (out[i]) return;
        const run = this.owned.get(this.byUid.get(uid) ?? -1);
        out[i] = run ? runFromMachine(run, run.machine) : runFromRow(rows.get(uid)!);
      });
    }
    return out as Run[];
  }

  /**
   * The run's events: history (replayed from the log) then live changes,
   * ending once the run has finished.
   */
  async *watch(uid: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<RunEvent> {
    const buffered: RunEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (events: RunEvent[]) => {
      pushAll(buffered, events);
      wake?.();
    };
    const subscribe = () => {
      const id = this.byUid.get(uid);
      const run = id !== undefined ? this.owned.get(id) : undefined;
      run?.listeners.add(listener);
      return run;
    };
    let run = subscribe();
    try {
      const row = await runs.loadRunByUid(this.sql, uid);
      if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
      const stored = await runs.loadEvents(this.sql, [row.id]);
      let last = afterSeq;
      for (const e of historyEvents(row, stored, this.config.machine)) {
        // after_seq 0 (unset) is the whole history: the start's events (seq 0) too.
        if (Number(e.seq) > afterSeq || afterSeq === 0) yield e;
        last = Math.max(last, Number(e.seq));
      }
      if (row.state >= RunState.SUCCEEDED) return;
      run ??= subscribe();
      // What runs right now, with its progress: the log cannot say (a task handed to a worker is not an event of it).
      if (run) for (const e of await this.runningNow(run)) yield e;
      for (;;) {
        while (buffered.length) {
          const e = buffered.shift()!;
          if (Number(e.seq) <= last && e.seq !== 0n) continue;
          yield e;
          if (e.kind.case === "run" && e.kind.value.state >= RunState.SUCCEEDED) return;
        }
        if (signal?.aborted) return;
        if (!run || !this.owned.has(run.id)) {
          // Not (or no longer) in this process's memory: follow it through its row.
          const r = await runs.loadRunByUid(this.sql, uid);
          if (!r || r.state >= RunState.SUCCEEDED) {
            if (r) yield create(RunEventSchema, { runId: uid, seq: BigInt(last + 1), kind: { case: "run", value: { state: r.state as RunState, outcome: runFromRow(r).outcome } } });
            return;
          }
          run = subscribe();
          if (!run) await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          const t = setTimeout(resolve, 1000);
          t.unref();
          signal?.addEventListener("abort", () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      run?.listeners.delete(listener);
    }
  }

  // ---- the commit loop -----------------------------------------------------

  private async flush(items: Item[], lock: (key: string) => boolean): Promise<void> {
    if ((this.needsReload.size || !this.unsure.empty) && !(await this.reloadPending())) {
      this.failItems(items, new PipewrightError("UNAVAILABLE", "the database is unavailable, retry later"));
      return;
    }
    const failure = await this.commitChecked(items, lock);
    if (failure) await this.settleFailure(items, lock, failure.error);
  }

  /** Commits the items: fast, then careful if the fast statement's check failed. Returns the error when nothing was written. */
  private async commitChecked(items: Item[], lock: (key: string) => boolean): Promise<{ error: unknown } | undefined> {
    const fast = await this.commit(items, "fast", lock);
    if (fast !== "check failed") return fast === "ok" ? undefined : fast;
    // A result was stale or a request_id taken: nothing was written; the
    // touched runs were reloaded. Redo the batch the careful way.
    await this.reloadPending();
    const careful = await this.commit(items, "careful", lock);
    return careful === "ok" || careful === "check failed" ? undefined : careful;
  }

  /**
   * A batch that could not be written. With the database unavailable, its
   * items wait (results) or fail back to their callers (UNAVAILABLE). Else one
   * of its items is what the database refuses: the batch is split in halves
   * until that item is alone, and it fails alone (one client's bad submit
   * used to fail 96 of 100 other clients' submits in the same batch, and a
   * result that could not be stored was retried every 1.6 s forever).
   */
  private async settleFailure(items: Item[], lock: (key: string) => boolean, error: unknown): Promise<void> {
    if (isUnavailable(error) || error instanceof PipewrightError) {
      this.config.log(`commit failed (${items.length} items): ${(error as Error).message}`);
      this.failItems(items, error);
      await new Promise((r) => setTimeout(r, 100));
      return;
    }
    const work = items.filter((i) => i.kind !== "inbox");
    if (work.length <= 1) {
      await this.failAlone(work[0] ?? items[0], lock, error);
      return;
    }
    const mid = Math.ceil(work.length / 2);
    for (const half of [work.slice(0, mid), work.slice(mid)]) {
      if (!(await this.reloadPending())) {
        this.failItems(half, new PipewrightError("UNAVAILABLE", "the database is unavailable, retry later"));
        continue;
      }
      const failure = await this.commitChecked(half, lock);
      if (failure) await this.settleFailure(half, lock, failure.error);
    }
    if (work.length < items.length) this.committer.add({ kind: "inbox" });
  }

  /** The one item of a batch the database refuses: it fails, with a reason, and nothing else does. */
  private async failAlone(item: Item, lock: (key: string) => boolean, error: unknown): Promise<void> {
    const ref = randomUUID().slice(0, 8);
    const { reason, tooLarge } = storageProblem(error);
    this.config.log(`commit refused [${ref}] for one ${item.kind}: ${(error as Error)?.stack ?? String(error)}`);
    switch (item.kind) {
      case "submit":
      case "control": {
        const what = item.kind === "submit" ? "the submission" : `the ${item.action} of run ${item.uid}`;
        item.reject(new PipewrightError(tooLarge ? "RESOURCE_EXHAUSTED" : "INVALID_ARGUMENT", `${what} could not be stored: ${reason} (ref ${ref})`));
        return;
      }
      case "result": {
        // The attempt fails with a final error instead (it is small: it can be stored);
        // if even that cannot be, the run cannot go on.
        const r = item.result;
        const error = serverError("InvalidResult", `the worker's result could not be stored: ${reason} (ref ${ref})`);
        if (r.result.outcome.case !== "error" || r.result.outcome.value.type !== ErrorTypes.invalidResult) {
          const replaced: Item = { kind: "result", result: { ...r, raw: undefined, result: create(TaskResultSchema, { key: r.result.key, outcome: { case: "error", value: error } }) } };
          if (await this.reloadPending()) {
            const failure = await this.commitChecked([replaced], lock);
            if (!failure) return;
          }
        }
        this.committer.add({ kind: "abandon", runId: r.runId, error: this.internalError(`storing the failure of run ${r.runId}'s step ${r.step}`, error) });
        return;
      }
      case "abandon":
        this.config.log(`run ${item.runId} could not even be ended [${ref}]; it stays as stored until a restart replays it`);
        return;
      case "inbox":
        // Entries other processes put here for our runs: looked at again in a moment, not
        // at once (an entry that cannot be applied must not make this a busy loop).
        setTimeout(() => this.committer.add(item), 1000).unref();
        return;
    }
  }

  private async commit(items: Item[], mode: "fast" | "careful", lock: (key: string) => boolean): Promise<"ok" | "check failed" | { error: unknown }> {
    const batch = new Batch(mode, lock);
    const inbox = items.some((i) => i.kind === "inbox") ? await this.readOwnInbox() : [];
    this.inFlight.add(batch);
    try {
      if (mode === "fast") {
        await this.applySubmits(items, batch, new Map());
        this.applyInbox(inbox, batch);
        this.applyResults(items, batch, undefined);
        this.applyControls(items, batch);
        this.applyAbandons(items, batch);
        await this.materializeInSlices(batch.rows.slice(0, ROWS_PER_STATEMENT).concat(batch.retries), batch);
        await this.write(undefined, batch);
      } else {
        await inTransaction(this.sql, async (tx) => {
          const requestIds = [...new Set(items.flatMap((i) => (i.kind === "submit" ? i.batch.map((p) => p.requestId).filter((r) => r) : [])))];
          const known = new Map((await runs.findByRequestIds(tx, requestIds)).map((e) => [e.requestId, e]));
          await this.applySubmits(items, batch, known);
          this.applyInbox(inbox, batch);
          const awaited = this.awaitedResults(items, batch);
          const accepted = await queue.completeAttempts(tx, awaited.map((r) => ({ runId: r.runId, step: r.step, attempt: r.attempt })));
          this.applyResults(items, batch, new Set(accepted.map((a) => `${a.runId}/${a.step}/${a.attempt}`)));
          this.applyControls(items, batch);
          this.applyAbandons(items, batch);
          await this.materializeInSlices(batch.rows.slice(0, ROWS_PER_STATEMENT).concat(batch.retries), batch);
          await this.write(tx, batch);
        });
      }
    } catch (err) {
      this.inFlight.delete(batch);
      // A broken connection leaves the commit in doubt: what it may have written is checked once the database answers.
      if (isUnavailable(err)) this.unsure.note(batch.newRuns.map((n) => n.run.uid), undeliveredClaims(batch));
      this.rollback(batch);
      const code = (err as { code?: string }).code;
      if (code === OWNERSHIP_LOST) {
        await this.dropMovedRuns([...batch.changed].map((r) => r.id).filter((id) => id > 0));
        this.committer.retry(items.filter((i) => i.kind !== "inbox"));
        return "ok"; // nothing to settle: the items go again, to their runs' new owners
      }
      if (mode === "fast" && code === BATCH_CHECK_FAILED) return "check failed";
      return { error: err };
    }
    this.inFlight.delete(batch);
    if (batch.deferred.length) this.committer.addAll(batch.deferred);
    for (const action of batch.after) {
      try {
        action();
      } catch (err) {
        this.config.log(`after-commit action failed: ${(err as Error).stack}`);
      }
    }
    this.publish(batch);
    return "ok";
  }

  private async readOwnInbox(): Promise<InboxEntry[]> {
    try {
      return await readInbox(this.sql, this.config.processId, 2000);
    } catch (err) {
      this.config.log(`reading the inbox: ${(err as Error).message}`);
      return [];
    }
  }

  /** Results and controls other processes received for runs this one owns. */
  private applyInbox(entries: InboxEntry[], batch: Batch): void {
    for (const e of entries) {
      const run = this.owned.get(e.runId);
      // Not loaded here (yet), or held by another batch in flight: it stays in the inbox for the next look.
      if (!run || !batch.lock(`run:${run.id}`) || this.inFlightElsewhere(run, batch)) {
        if (run) this.committer.add({ kind: "inbox" });
        continue;
      }
      batch.inboxDone.push(e.id);
      const m = run.machine;
      const at = e.receivedAt.getTime();
      if (e.kind === runs.EventKind.taskFinished) {
        if (!m.isAwaitingResult(e.step!)) {
          this.staleResults++;
          continue;
        }
        const res = fromBinary(TaskResultSchema, e.body ?? new Uint8Array());
        const k = key(run, e.step!);
        batch.resultAttempts.set(k, e.attempt!);
        batch.preFenced.add(k);
        const startedAt = res.startTime ? Number(res.startTime.seconds) * 1000 + Math.floor(res.startTime.nanos / 1e6) : undefined;
        this.apply(run, { type: "taskFinished", at, step: e.step!, outcome: res.outcome, state: res.state, startedAt }, batch);
        continue;
      }
      if (m.result) continue; // a control for a run that has finished meanwhile
      if (e.kind === runs.EventKind.cancel) this.apply(run, { type: "cancel", at, reason: e.body ? Buffer.from(e.body).toString() : "" }, batch);
      else if (e.kind === runs.EventKind.pause && m.status === "running" && !m.stopping) this.apply(run, { type: "pause", at }, batch);
      else if (e.kind === runs.EventKind.resume && m.status === "paused") this.apply(run, { type: "resume", at }, batch);
    }
  }

  /**
   * Runs this process thought it owned were taken over by another process (it
   * was presumed dead): forget them here. Their waiters follow them through
   * the database; what arrives for them from now on goes to the new owner.
   */
  private async dropMovedRuns(candidates: number[]): Promise<void> {
    try {
      const moved = await runsOwnedElsewhere(this.sql, this.config.processId, candidates);
      for (const id of moved) {
        const run = this.owned.get(id);
        if (!run) continue;
        this.needsReload.delete(id);
        this.disown(run);
        for (const w of run.waiters) w(undefined);
      }
      if (moved.length) this.config.log(`${moved.length} runs were taken over by another server process; they are no longer run here`);
    } catch (err) {
      this.config.log(`checking run ownership: ${(err as Error).message}`);
    }
  }

  /** Submits and controls fail back to their callers; results (and run endings) are kept for a retry. */
  private failItems(items: Item[], err: unknown): void {
    const results = items.filter((i) => i.kind === "result" || i.kind === "abandon");
    if (results.length) this.committer.retry(results);
    const cause = err instanceof PipewrightError ? err : new PipewrightError("UNAVAILABLE", "could not persist the change, retry later");
    for (const item of items) if (item.kind === "submit" || item.kind === "control") item.reject(cause);
  }

  /** Undoes in memory what a batch that was not written did. */
  private rollback(batch: Batch): void {
    for (const r of batch.reservations.values()) this.dispatch.release(r);
    for (const { run } of batch.newRuns) this.disown(run);
    for (const run of batch.changed) if (this.owned.get(run.id) === run) this.needsReload.add(run.id);
  }

  private async reloadPending(): Promise<boolean> {
    if (this.needsReload.size === 0 && this.unsure.empty) return true;
    const ids = [...this.needsReload];
    try {
      if (!this.unsure.empty) {
        const { load, requeued } = await this.unsure.settle(this.sql, this.config.processId);
        try {
          await this.load(await runs.loadRunsByIds(this.sql, load));
        } catch (err) {
          this.unsure.noteAdopted(load);
          throw err;
        }
        if (load.length || requeued) this.config.log(`after a commit in doubt: ${load.length} runs it created loaded, ${requeued} undelivered attempts put back`);
        if (requeued) this.dispatch.poke();
      }
      const rows: runs.RunRow[] = [];
      for (const id of ids) {
        const run = this.owned.get(id);
        if (!run) continue;
        const row = await runs.loadRunByUid(this.sql, run.uid);
        if (row && row.state < RunState.SUCCEEDED && row.owner_id === this.config.processId) rows.push(row);
        else if (row && row.state < RunState.SUCCEEDED) {
          this.disown(run); // taken over by another process meanwhile
          for (const w of run.waiters) w(undefined);
        } else this.finishLocally(run, row);
      }
      await this.load(rows, true);
      this.needsReload.clear();
      return true;
    } catch (err) {
      this.config.log(`reloading runs after a failed commit: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
      return false;
    }
  }

  /** A run found finished in the database while we still held it (after a failed commit). */
  private finishLocally(run: OwnedRun, row: runs.RunRow | undefined): void {
    this.disown(run);
    if (row) for (const w of run.waiters) w(runFromRow(row));
  }

  /**
   * New runs: their machines start now and their rows are written with the
   * state after the start. `known` holds request_ids already in the database
   * (careful mode); in fast mode a taken request_id fails the batch's check.
   */
  private async applySubmits(items: Item[], batch: Batch, known: Map<string, runs.ExistingRun>): Promise<void> {
    const claimedNow = new Map<string, { uid: string; hash: Uint8Array | null }>();
    for (const item of items) {
      if (item.kind !== "submit") continue;
      const plan: ({ existing: string } | { run: OwnedRun })[] = [];
      const created: { run: OwnedRun; p: PreparedSubmit }[] = [];
      let conflict: string | undefined;
      let broken: unknown;
      for (const p of item.batch) {
        const prior = p.requestId ? (claimedNow.get(p.requestId) ?? known.get(p.requestId)) : undefined;
        if (prior) {
          const hash = "requestHash" in prior ? prior.requestHash : prior.hash;
          if (!sameBytes(hash, p.requestHash)) {
            conflict = `request_id ${JSON.stringify(p.requestId)} was already used for a different submission (run ${prior.uid})`;
            break;
          }
          plan.push({ existing: prior.uid });
          continue;
        }
        const createdAt = p.started?.createdAt ?? Date.now();
        let machine: RunMachine;
        try {
          machine = p.started?.machine ?? new RunMachine(p.pipeline, this.config.machine);
        } catch (err) {
          broken = err; // a bug: this submission fails alone, not the batch it came in
          break;
        }
        const run: OwnedRun = {
          id: 0, // assigned by the database when the batch is written
          uid: randomUUID(),
          requestId: p.requestId,
          name: p.name,
          createdAt,
          deadline: p.runTimeoutMs > 0 ? createdAt + p.runTimeoutMs : undefined,
          machine,
          nextSeq: 1,
          committedSeq: 0,
          waiters: new Set(),
          listeners: new Set(),
          storedBlobs: new Set(),
        };
        if (p.requestId) claimedNow.set(p.requestId, { uid: run.uid, hash: p.requestHash });
        created.push({ run, p });
        plan.push({ run });
      }
      if (conflict || broken) {
        for (const { run } of created) if (run.requestId && claimedNow.get(run.requestId)?.uid === run.uid) claimedNow.delete(run.requestId);
        const error = conflict ? new PipewrightError("ALREADY_EXISTS", conflict) : broken;
        batch.after.push(() => item.reject(error));
        continue;
      }
      for (const { run, p } of created) {
        this.byUid.set(run.uid, 0);
        batch.lock(`uid:${run.uid}`); // a control for it waits for this batch (see orderKey)
        if (p.started) await this.recordInSlices(run, p.started.effects, batch, run.createdAt);
        else this.apply(run, { type: "start", at: run.createdAt }, batch, 0);
        const m = run.machine;
        const r = m.result;
        batch.newRuns.push({
          run,
          row: {
            uid: run.uid,
            requestId: p.requestId || null,
            requestHash: p.requestHash,
            name: p.name,
            spec: p.spec,
            deadline: run.deadline !== undefined ? new Date(run.deadline) : null,
            taskCount: m.graph.taskCount,
            createdAt: new Date(run.createdAt),
            state: machineRunState(m),
            finishedAt: r ? new Date(m.finishedAt!) : null,
            outcome: r ? encodeOutcome(r.outcome) : null,
            finalState: r ? (encodeFinalState(r.finalState) ?? null) : null,
          },
        });
      }
      batch.after.push(() => {
        const pending = plan.map((entry) =>
          "run" in entry
            ? Promise.resolve({ run: runFromMachine(entry.run, entry.run.machine), existing: false })
            : this.getRun(entry.existing, false).then((run) => ({ run, existing: true })),
        );
        Promise.all(pending).then(item.resolve, item.reject);
      });
    }
  }

  /** Results this batch can apply (for the careful fence): owned runs, not in another batch, awaiting the step. */
  private awaitedResults(items: Item[], batch: Batch): IncomingResult[] {
    const out: IncomingResult[] = [];
    for (const item of items) {
      if (item.kind !== "result") continue;
      const run = this.owned.get(item.result.runId);
      if (run && !this.inFlightElsewhere(run, batch) && run.machine.isAwaitingResult(item.result.step)) out.push(item.result);
    }
    return out;
  }

  /**
   * Applies results. `accepted` (careful mode) names the attempts the fence
   * let through; in fast mode every awaited result is applied and the
   * statement checks they were all current. Results for another process's
   * runs are fenced and sent to its inbox.
   */
  private applyResults(items: Item[], batch: Batch, accepted: Set<string> | undefined): void {
    for (const item of items) {
      if (item.kind !== "result") continue;
      const r = item.result;
      const run = this.owned.get(r.runId);
      if (!run) {
        batch.foreign.push({ key: { runId: r.runId, step: r.step, attempt: r.attempt }, body: r.raw ?? toBinary(TaskResultSchema, r.result), receivedAt: new Date(r.receivedAt) });
        continue;
      }
      if (this.inFlightElsewhere(run, batch)) {
        batch.deferred.push(item); // changed by another batch in flight (its inbox): next batch
        continue;
      }
      if (!run.machine.isAwaitingResult(r.step) || (accepted && !accepted.has(`${r.runId}/${r.step}/${r.attempt}`))) {
        this.staleResults++; // late, duplicated, or no longer the current attempt
        continue;
      }
      batch.resultAttempts.set(key(run, r.step), r.attempt);
      if (batch.mode === "fast") batch.completions.push({ runId: r.runId, step: r.step, attempt: r.attempt });
      const res = r.result;
      const startedAt = res.startTime ? Number(res.startTime.seconds) * 1000 + Math.floor(res.startTime.nanos / 1e6) : undefined;
      this.apply(run, { type: "taskFinished", at: r.receivedAt, step: r.step, outcome: res.outcome, state: res.state, startedAt }, batch, undefined, r.raw);
    }
  }

  private applyControls(items: Item[], batch: Batch): void {
    for (const item of items) {
      if (item.kind !== "control") continue;
      const id = this.byUid.get(item.uid);
      if (id === 0) {
        batch.deferred.push(item); // its run is being created in this very batch
        continue;
      }
      const run = id !== undefined ? this.owned.get(id) : undefined;
      if (!run) {
        if (item.action !== "timeout") batch.after.push(() => this.rejectControl(item));
        continue;
      }
      if (this.inFlightElsewhere(run, batch)) {
        batch.deferred.push(item);
        continue;
      }
      const m = run.machine;
      const refuse = (why: string) => batch.after.push(() => item.reject(new PipewrightError("FAILED_PRECONDITION", why)));
      if (m.result) {
        refuse(`run ${run.uid} has already finished`);
        continue;
      }
      if (item.action === "pause" && (m.status !== "running" || m.stopping)) {
        refuse(`run ${run.uid} is ${m.stopping ? "being cancelled" : "already paused"}, it cannot be paused`);
        continue;
      }
      if (item.action === "resume" && m.status !== "paused") {
        refuse(`run ${run.uid} is not paused`);
        continue;
      }
      const at = Date.now();
      const input: RunInput =
        item.action === "cancel" ? { type: "cancel", at, reason: item.reason } : item.action === "timeout" ? { type: "timeout", at } : { type: item.action, at };
      this.apply(run, input, batch);
      batch.after.push(() => item.resolve(runFromMachine(run, run.machine)));
    }
  }

  private rejectControl(item: Extract<Item, { kind: "control" }>): void {
    runs
      .loadRunByUid(this.sql, item.uid)
      .then((row) => {
        if (!row) item.reject(new PipewrightError("NOT_FOUND", `no run with id ${item.uid}`));
        else if (row.state >= RunState.SUCCEEDED) item.reject(new PipewrightError("FAILED_PRECONDITION", `run ${item.uid} has already finished`));
        else item.reject(new PipewrightError("UNAVAILABLE", `run ${item.uid} is owned by another server process; retry`));
      })
      .catch(item.reject);
  }

  /** Applies one input to a run and turns its effects into the batch's writes. `raw`: a result's bytes as received, to store as its event. */
  private apply(run: OwnedRun, input: RunInput, batch: Batch, seq?: number, raw?: Uint8Array): void {
    const before = machineRunState(run.machine);
    const tasksBefore = run.machine.graph.taskCount;
    let effects: Effect[];
    try {
      effects = run.machine.apply(input);
      if (input.type !== "start") {
        seq = run.nextSeq++;
        batch.events.push(encodeEvent(run.id, seq, input, raw));
      }
    } catch (err) {
      // A bug: the machine's state may be half-applied, so it must not go on
      // (nor stay in memory as it is). The run ends FAILED here, its tasks
      // cancelled; the input that broke it is not stored (replaying it would
      // break the same way).
      effects = run.machine.abandon(this.internalError(`applying a ${input.type} to run ${run.uid}`, err), input.at);
    }
    this.record(run, effects, batch, before, tasksBefore, seq ?? 0, input.at);
  }

  /** Runs that cannot go on end FAILED (their tasks cancelled). */
  private applyAbandons(items: Item[], batch: Batch): void {
    for (const item of items) {
      if (item.kind !== "abandon") continue;
      const run = this.owned.get(item.runId);
      if (!run || run.machine.result) continue;
      if (this.inFlightElsewhere(run, batch)) {
        batch.deferred.push(item);
        continue;
      }
      const before = machineRunState(run.machine);
      const tasksBefore = run.machine.graph.taskCount;
      const at = Date.now();
      this.record(run, run.machine.abandon(item.error, at), batch, before, tasksBefore, run.nextSeq - 1, at);
    }
  }

  /** record() for the start of a big run (built apart: see submit), letting other work run every ~10 ms. */
  private async recordInSlices(run: OwnedRun, effects: Effect[], batch: Batch, at: number): Promise<void> {
    for (let i = 0; i < effects.length; i += 1024) {
      const slice = effects.slice(i, i + 1024);
      this.record(run, slice, batch, RunState.RUNNING, 0, 0, at);
      await pauseForOthers();
    }
  }

  /** Turns what one input did to a run into the batch's writes and live events. */
  private record(run: OwnedRun, effects: Effect[], batch: Batch, before: RunState, tasksBefore: number, seq: number, at: number): void {
    batch.changed.add(run);
    for (const e of effects) this.effect(run, e, batch);
    if (run.listeners.size) {
      const list = batch.liveEvents.get(run) ?? [];
      pushAll(list, eventsOf(run.uid, run.machine, seq, at, before));
      batch.liveEvents.set(run, list);
    }
    if (run.machine.graph.taskCount !== tasksBefore || machineRunState(run.machine) !== before) batch.dirty.add(run);
  }

  /** A pipewright.Internal error for a run that cannot go on; the cause goes to the log under the reference. */
  private internalError(what: string, err: unknown): TaskError {
    const ref = randomUUID().slice(0, 8);
    this.config.log(`internal error ${what} [${ref}]: ${(err as Error)?.stack ?? String(err)}`);
    return serverError("Internal", `the server could not go on with this run (ref ${ref}); it ended it`);
  }

  private effect(run: OwnedRun, e: Effect, batch: Batch): void {
    switch (e.type) {
      case "dispatch": {
        const d = e.dispatch;
        const queueName = d.call.options?.queue || "";
        const paused = run.machine.status === "paused";
        const reservation = !paused && d.notBefore <= Date.now() ? this.dispatch.reserve(d.call.task, queueName) : undefined;
        const k = key(run, d.step);
        if (reservation) batch.reservations.set(k, reservation);
        const previous = batch.resultAttempts.get(k);
        // Encoded now only for a local worker (it gets the message); otherwise when written.
        const assignment = reservation ? encodeAssignment(d, this.config.timeouts) : undefined;
        if (assignment) this.keepBlobs(batch, run, assignment.blobs);
        const row: queue.QueueRow = {
          runId: run.id,
          step: d.step,
          task: d.call.task,
          queue: queueName,
          availableAt: new Date(Math.max(d.notBefore, 0)),
          assignment: assignment?.bytes ?? EMPTY,
          held: paused,
          attempt: previous ?? 0,
          waitDeadline: this.waitDeadline(d),
          claimedBy: reservation ? { processId: this.config.processId, workerId: reservation.workerId, leaseMs: this.config.leaseMs } : undefined,
        };
        if (previous !== undefined && batch.mode === "fast" && !batch.preFenced.has(k)) {
          // A retry of an attempt finished in this batch: its row is reset in place.
          batch.completions = batch.completions.filter((c) => !(c.runId === run.id && c.step === d.step));
          batch.retries.push({ run, row, message: assignment?.message, size: assignment?.size, dispatch: assignment ? undefined : d });
        } else {
          batch.rows.push({ run, row, message: assignment?.message, size: assignment?.size, dispatch: assignment ? undefined : d });
        }
        return;
      }
      case "cancelTask":
        batch.removals.push({ run, step: e.step });
        return;
      case "holdQueued":
        batch.holds.push({ run, held: e.held });
        return;
      case "finished":
        return; // written with the run's row
    }
  }

  /** The batch as the single statement's input. */
  private toWrite(batch: Batch): BatchWrite {
    // A step dispatched and cancelled within one batch is never written.
    const removed = new Set(batch.removals.map((r) => key(r.run, r.step)));
    for (const [k, res] of batch.reservations) {
      if (removed.has(k)) {
        this.dispatch.release(res);
        batch.reservations.delete(k);
      }
    }
    const kept = (p: PendingRow) => !removed.has(key(p.run, p.row.step));
    batch.rows = batch.rows.filter(kept);
    batch.retries = batch.retries.filter(kept);
    const newRuns = new Set(batch.newRuns.map((n) => n.run));
    const now = Date.now();
    return {
      owner: this.config.processId,
      owned: [...batch.changed].filter((r) => !newRuns.has(r)).map((r) => r.id),
      foreign: batch.foreign,
      inboxDone: batch.inboxDone,
      notifyReady: batch.rows.some((p) => !p.row.claimedBy && !p.row.held && p.row.availableAt.getTime() <= now),
      finishedUids: this.peers ? [...batch.changed].filter((r) => r.machine.result).map((r) => r.uid) : [],
      newRuns: batch.newRuns.map((n) => n.row),
      completions: batch.completions,
      retries: batch.retries.map((p) => ({ key: { runId: p.run.id, step: p.row.step, attempt: p.row.attempt }, row: { ...this.materialize(p, batch), runId: p.run.id } })),
      removals: batch.removals.map((r) => ({ runId: r.run.id, step: r.step })),
      rows: batch.rows.slice(0, ROWS_PER_STATEMENT).map((p) => ({ ...this.materialize(p, batch), runId: p.run.id, runUid: p.run.id === 0 ? p.run.uid : undefined })),
      holds: batch.holds.map((h) => ({ runId: h.run.id, held: h.held })),
      events: batch.events,
      runUpdates: [...batch.dirty]
        .filter((run) => !newRuns.has(run))
        .map((run) => {
          const m = run.machine;
          const r = m.result;
          return {
            id: run.id,
            state: machineRunState(m),
            taskCount: m.graph.taskCount,
            finishedAt: r ? new Date(m.finishedAt!) : undefined,
            outcome: r ? encodeOutcome(r.outcome) : undefined,
            finalState: r ? encodeFinalState(r.finalState) : undefined,
          };
        }),
    };
  }

  /**
   * Encodes the assignments of these rows, letting other work run every
   * ~10 ms: 5,000 assignments take 20-140 ms to encode (a big group's rows).
   */
  private async materializeInSlices(rows: PendingRow[], batch: Batch): Promise<void> {
    for (let i = 0; i < rows.length; i++) {
      this.materialize(rows[i], batch);
      if (i % 256 === 255) await pauseForOthers();
    }
  }

  /** A row with its assignment encoded (its big payloads noted for the batch). */
  private materialize(p: PendingRow, batch: Batch): queue.QueueRow {
    if (p.dispatch) {
      const encoded = encodeAssignment(p.dispatch, this.config.timeouts);
      p.row.assignment = encoded.bytes;
      this.keepBlobs(batch, p.run, encoded.blobs);
      p.dispatch = undefined;
    }
    return p.row;
  }

  /**
   * Writes the batch: its statement, then the queue rows beyond the
   * statement's share and the big payloads its rows refer to; then plans what
   * follows the commit. Without a transaction (`tx` undefined), one opens when
   * there is more than the statement (one statement commits on its own).
   */
  private async write(tx: Tx | undefined, batch: Batch): Promise<void> {
    const w = this.toWrite(batch);
    const run = async (sql: Sql | Tx) => {
      const result = await writeBatch(sql, w);
      this.assignRunIds(batch, result);
      await this.writeRemainingRows(sql, batch);
      await this.writeBlobs(sql, batch);
      this.finishWrite(batch, result);
    };
    if (tx) await run(tx);
    else if (batch.rows.length <= ROWS_PER_STATEMENT && batch.blobs.size === 0) await run(this.sql);
    else await inTransaction(this.sql, run);
  }

  /** The big payloads referred to by the rows written (each once per run; see payload-refs.ts). */
  private async writeBlobs(sql: Sql | Tx, batch: Batch): Promise<void> {
    if (batch.blobs.size === 0) return;
    const blobs = [...batch.blobs.values()];
    await insertBlobs(sql, blobs.map((b) => ({ runId: b.run.id, hash: b.hash, data: b.data })));
    for (const b of blobs) b.run.storedBlobs.add(Buffer.from(b.hash).toString("hex"));
  }

  /** Notes the payloads a row's stored assignment refers to, unless its run stored them already. */
  private keepBlobs(batch: Batch, run: OwnedRun, blobs: BlobData[]): void {
    for (const b of blobs) {
      const hex = Buffer.from(b.hash).toString("hex");
      if (!run.storedBlobs.has(hex)) batch.blobs.set(`${run.uid}/${hex}`, { run, ...b });
    }
  }

  /** Rows beyond the first statement's share, in chunks (run ids are known by now). */
  private async writeRemainingRows(tx: Sql | Tx, batch: Batch): Promise<void> {
    // Two chunks in flight: PostgreSQL inserts one while this process encodes the next
    // (pipelined on the transaction's connection), and memory holds at most two encoded.
    let previous: Promise<void> = Promise.resolve();
    for (let i = ROWS_PER_STATEMENT; i < batch.rows.length; i += ROWS_PER_STATEMENT) {
      const pending = batch.rows.slice(i, i + ROWS_PER_STATEMENT);
      await this.materializeInSlices(pending, batch);
      const written = insertQueueRows(tx, pending.map((p) => ({ ...this.materialize(p, batch), runId: p.run.id }))).then(() => {
        for (const p of pending) if (!p.row.claimedBy) p.row.assignment = EMPTY; // written: let it go
      });
      written.catch(() => {}); // if an earlier chunk fails, this one's failure is not news (and must not go unhandled)
      await previous;
      previous = written;
    }
    await previous;
  }

  /** After the statement: new runs get their ids. */
  private assignRunIds(batch: Batch, result: BatchWriteResult): void {
    for (const { run } of batch.newRuns) {
      if (run.id) continue;
      const id = result.runIds.get(run.uid);
      if (id === undefined) throw new Error(`the new run ${run.uid} got no id`);
      run.id = id;
    }
  }

  /** After the writes: own the new runs; plan deliveries, cancels and wake-ups. */
  private finishWrite(batch: Batch, result: BatchWriteResult): void {
    for (const { run } of batch.newRuns) this.own(run);
    const written = [...batch.rows, ...batch.retries];
    const now = Date.now();
    const later = written.filter((p) => !p.row.held && p.row.availableAt.getTime() > now).map((p) => p.row.availableAt.getTime());
    const unreserved = written.some((p) => !p.row.claimedBy && !p.row.held && p.row.availableAt.getTime() <= now);
    batch.after.push(() => {
      for (const { run, row, message, size } of written) {
        const res = row.claimedBy ? batch.reservations.get(key(run, row.step)) : undefined;
        if (!res) continue;
        if (run.machine.result || !this.owned.has(run.id)) {
          this.dispatch.release(res);
          continue;
        }
        this.dispatch.deliver(res, { runId: run.id, runUid: run.uid, step: row.step, attempt: row.attempt + 1, task: row.task, assignment: row.assignment, message, size });
      }
      if (result.cancelled.length) this.dispatch.cancel(result.cancelled, "the run was cancelled");
      if (unreserved || batch.holds.some((h) => !h.held)) this.dispatch.poke();
      if (later.length) this.dispatch.pokeAt(minOf(later));
    });
  }

  /** After the commit: wake waiters and watchers, forget finished runs. */
  private publish(batch: Batch): void {
    for (const run of batch.changed) run.committedSeq = run.nextSeq - 1;
    for (const [run, events] of batch.liveEvents) for (const l of run.listeners) l(events);
    for (const run of batch.changed) {
      if (!run.machine.result) continue;
      const view = runFromMachine(run, run.machine);
      this.recentlyFinished.set(run.uid, view);
      if (this.recentlyFinished.size > RunEngine.RECENTLY_FINISHED) this.recentlyFinished.delete(this.recentlyFinished.keys().next().value!);
      for (const w of run.waiters) w(view);
      run.waiters.clear();
      this.disown(run);
    }
  }
}

/** The rows a batch wrote already claimed for local workers (none was delivered if its commit failed). */
function undeliveredClaims(batch: Batch): queue.UndeliveredClaim[] {
  return [...batch.reservations].map(([k, r]) => {
    const slash = k.lastIndexOf("/");
    return { runUid: k.slice(0, slash), step: Number(k.slice(slash + 1)), workerId: r.workerId };
  });
}

/** Rebuilds a run's machine from its row and stored events. */
export function replay(row: runs.RunRow, events: runs.StoredEvent[], config: MachineConfig): RunMachine {
  const machine = new RunMachine(fromBinary(PipelineSchema, row.spec), config);
  machine.apply({ type: "start", at: row.created_at.getTime() });
  for (const e of events) machine.apply(decodeEvent(e));
  return machine;
}

/**
 * The public events of a run's history, rebuilt from its log. A run ended by
 * pipewright.Internal (its log does not replay, or does not hold what ended
 * it) gives what replays, then its end as its row says.
 */
export function historyEvents(row: runs.RunRow, events: runs.StoredEvent[], config: MachineConfig): RunEvent[] {
  const out: RunEvent[] = [];
  let before = RunState.UNSPECIFIED;
  let seq = 0;
  try {
    const machine = new RunMachine(fromBinary(PipelineSchema, row.spec), config);
    machine.apply({ type: "start", at: row.created_at.getTime() });
    pushAll(out, eventsOf(row.uid, machine, 0, row.created_at.getTime(), before));
    before = machineRunState(machine);
    for (const e of events) {
      const input = decodeEvent(e);
      machine.apply(input);
      seq = e.seq;
      pushAll(out, eventsOf(row.uid, machine, e.seq, input.at, before));
      before = machineRunState(machine);
    }
  } catch {
    // what replayed so far is all the log can tell
  }
  if (row.state >= RunState.SUCCEEDED && row.state !== before) {
    const view = runFromRow(row);
    out.push(create(RunEventSchema, { runId: row.uid, seq: BigInt(seq + 1), kind: { case: "run", value: { state: view.state, outcome: view.outcome } } }));
  }
  return out;
}

function durationMs(d: Duration | undefined): number | undefined {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : undefined;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (!a || !b) return a === b || (!a?.length && !b?.length);
  return Buffer.from(a).equals(Buffer.from(b));
}

export function encodeSpec(p: Pipeline): Uint8Array {
  return toBinary(PipelineSchema, p);
}
