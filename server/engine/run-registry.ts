// The runs this process owns, in memory: found by id or uid, loaded from the
// database and replayed, reloaded after a commit failed (memory may then be
// ahead of what is stored), and let go when they finish or move to another
// process. Runs that finished here lately are remembered as answered (a
// client typically submits, then waits): no trip to the database for them.

import type { Run } from "@pipewright/protocol";
import { RunState } from "@pipewright/protocol";
import type { Metrics } from "../observe/metrics.js";
import type { MachineConfig, RunMachine } from "../core/run-machine.js";
import { endRunTrace, resumeRunTrace } from "../observe/run-spans.js";
import { inTransaction, type Sql } from "../store/database.js";
import * as runs from "../store/run-store.js";
import * as queue from "../store/task-queue.js";
import { armRunDeadline } from "./deadlines.js";
import { internalError } from "./internal-error.js";
import { ownedRun, type OwnedRun } from "./owned-run.js";
import { replay, startedAt } from "./replay.js";
import { encodeOutcome, runFromMachine, runFromRow } from "./run-views.js";
import { UnsureCommits } from "./unsure-commits.js";
import { WakeTimers } from "./wake-timers.js";
import { loadEvents, type StoredEvent } from "../store/run-events.js";
import type { Logger } from "../observe/logger.js";

export interface RegistryConfig {
  machine: MachineConfig;
  processId: string;
  log: Logger;
  metrics: Pick<Metrics, "runFinished">;
}

export interface RegistryHooks {
  /** A held run's deadline passed: commit its timeout. */
  deadline(run: OwnedRun): void;
  /** A held run's wait may have ended by itself or timed out: commit a wake. */
  wake(run: OwnedRun): void;
  /** Attempts went back to the queue (after a commit in doubt): look for workers. */
  poke(): void;
  /** A run was loaded (a restart, an adoption, a parked run back): it may be parked again. */
  loaded(run: OwnedRun): void;
}

/** What a batch being committed has changed (its runs are ahead of the database until it commits). */
export interface InFlightBatch {
  readonly changed: ReadonlySet<OwnedRun>;
}

/** Finished runs remembered (oldest out first), so memory stays bounded by what is in flight. */
const RECENTLY_FINISHED = 50_000;

export class RunRegistry {
  private readonly owned = new Map<number, OwnedRun>();
  /** Run id by uid; 0 while the batch creating the run is being written. */
  private readonly byUid = new Map<string, number>();
  private readonly recentlyFinished = new Map<string, Run>();
  /** The wake timers of the held runs' waits, and their safety net. */
  readonly wakes: WakeTimers;
  /** Runs a failed commit left ahead of the database: reloaded before the next batch. */
  readonly needsReload = new Set<number>();
  /** What failed commits may have written after all (see unsure-commits.ts). */
  readonly unsure = new UnsureCommits();
  /** Batches being committed. */
  readonly inFlight = new Set<InFlightBatch>();

  constructor(
    private readonly sql: Sql,
    private readonly config: RegistryConfig,
    private readonly hooks: RegistryHooks,
  ) {
    this.wakes = new WakeTimers((run) => hooks.wake(run), config.log);
  }

  get size(): number {
    return this.owned.size;
  }

  runs(): IterableIterator<OwnedRun> {
    return this.owned.values();
  }

  byId(id: number): OwnedRun | undefined {
    return this.owned.get(id);
  }

  /** The run held here under this uid, if any. */
  held(uid: string): OwnedRun | undefined {
    const id = this.byUid.get(uid);
    return id !== undefined ? this.owned.get(id) : undefined;
  }

  /** Whether the run is being created by a batch not yet written. */
  isBeingCreated(uid: string): boolean {
    return this.byUid.get(uid) === 0;
  }

  /** Whether this process holds (or is creating) the run. */
  knows(uid: string): boolean {
    return this.byUid.has(uid);
  }

  /** The run's id if held (0: being created). */
  idOf(uid: string): number | undefined {
    return this.byUid.get(uid);
  }

  /** Notes a run a batch is creating (its id comes with the write). */
  creating(run: OwnedRun): void {
    this.byUid.set(run.uid, 0);
  }

  recent(uid: string): Run | undefined {
    return this.recentlyFinished.get(uid);
  }

  /** A deleted run (DeleteRun) is no longer answered from memory. */
  forget(uid: string): void {
    this.recentlyFinished.delete(uid);
  }

  /**
   * Retention: runs finished before `cutoff` are deleted from the database by
   * whichever process sweeps first; none is answered from memory after that.
   * The cache is in finishing order, so this stops at the first newer run.
   */
  forgetFinishedBefore(cutoff: number): number {
    let n = 0;
    for (const [uid, run] of this.recentlyFinished) {
      const at = run.finishTime ? Number(run.finishTime.seconds) * 1000 + run.finishTime.nanos / 1e6 : 0;
      if (at >= cutoff) break;
      this.recentlyFinished.delete(uid);
      n++;
    }
    return n;
  }

  /** Whether a batch being committed (other than `batch`) holds changes of `run`. */
  busyElsewhere(run: OwnedRun, batch: InFlightBatch | undefined): boolean {
    for (const b of this.inFlight) if (b !== batch && b.changed.has(run)) return true;
    return false;
  }

  own(run: OwnedRun): void {
    this.owned.set(run.id, run);
    this.byUid.set(run.uid, run.id);
    armRunDeadline(run, () => this.hooks.deadline(run));
    this.armWake(run);
  }

  /** Sets the run's wake timer (wake-timers.ts), after each commit that changed it and when it is loaded. */
  armWake(run: OwnedRun): void {
    if (this.owned.get(run.id) === run) this.wakes.arm(run);
  }

  disown(run: OwnedRun): void {
    run.timer?.clear();
    this.wakes.forget(run);
    this.owned.delete(run.id);
    this.byUid.delete(run.uid);
  }

  /** A run finished here and committed: its waiters get it, it is remembered, and let go. */
  finished(run: OwnedRun): void {
    this.config.metrics.runFinished(RunState[run.machine.runState]);
    const view = runFromMachine(run, run.machine);
    logFinished(this.config.log, run, view);
    this.recentlyFinished.set(run.uid, view);
    endRunTrace(run.trace, RunState[run.machine.runState], runError(run));
    if (this.recentlyFinished.size > RECENTLY_FINISHED) this.recentlyFinished.delete(this.recentlyFinished.keys().next().value!);
    for (const w of run.waiters) w(view);
    run.waiters.clear();
    this.disown(run);
  }

  /** A run another process took over: let go here; its waiters follow it through the database. */
  moved(run: OwnedRun): void {
    this.needsReload.delete(run.id);
    endRunTrace(run.trace, "moved"); // the process that took it over goes on in the same trace (the runs row's context)
    this.disown(run);
    for (const w of run.waiters) w(undefined);
  }

  /** A run parked (engine/parking.ts): it leaves memory, its row says when it must be back. */
  park(run: OwnedRun): void {
    endRunTrace(run.trace, "parked"); // it goes on in the same trace once loaded again (the runs row's context)
    this.disown(run);
  }

  /** Stops the deadline timers (shutdown). */
  clearTimers(): void {
    for (const run of this.owned.values()) {
      run.timer?.clear();
      this.wakes.forget(run);
    }
  }

  /** Shutdown: the spans of the runs still held end, to be flushed ("stopped": the runs go on after a restart, in the same trace). */
  endTraces(): void {
    for (const run of this.owned.values()) endRunTrace(run.trace, "stopped");
  }

  /**
   * Rebuilds runs from their rows and logs and holds them. `reload`: runs this
   * process holds already (after a failed commit); one it let go meanwhile
   * stays let go.
   */
  async load(rows: runs.RunRow[], reload = false): Promise<void> {
    const events = await loadEvents(
      this.sql,
      rows.map((r) => r.id),
    );
    const byRun = new Map<number, StoredEvent[]>();
    for (const e of events) {
      let list = byRun.get(e.runId);
      if (!list) byRun.set(e.runId, (list = []));
      list.push(e);
    }
    for (const row of rows) {
      const held = this.owned.get(row.id);
      if (reload && !held) continue;
      const lastSeq = byRun.get(row.id)?.at(-1)?.seq ?? 0;
      if (held && (this.busyElsewhere(held, undefined) || held.committedSeq > lastSeq)) {
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
      const run = ownedRun({
        id: row.id,
        uid: row.uid,
        namespace: row.namespace,
        requestId: row.request_id ?? "",
        name: row.name,
        createdAt: row.created_at.getTime(),
        startAt: startedAt(row),
        deadline: row.deadline?.getTime(),
        machine,
        lastSeq,
      });
      const old = this.owned.get(row.id);
      if (old) {
        run.waiters = old.waiters;
        run.listeners = old.listeners;
        run.trace = old.trace; // its span goes on
        old.timer?.clear();
        old.wakeTimer?.clear();
      } else run.trace = resumeRunTrace(row.traceparent, row.tracestate);
      if (machine.result) {
        // Its end was committed after its row was read (the log says more than the row
        // did): there is nothing to hold. Held, it would never be let go (seen under load:
        // finished runs kept in memory for good).
        if (old) this.disown(old);
        endRunTrace(run.trace, RunState[machine.runState], runError(run));
        const view = runFromMachine(run, machine);
        for (const w of run.waiters) w(view);
        continue;
      }
      this.own(run);
      this.hooks.loaded(run);
    }
  }

  /** Ends FAILED a run whose log cannot be replayed (its tasks leave the queue); wakes whoever waited on it here. */
  private async endUnreplayable(row: runs.RunRow, err: unknown): Promise<void> {
    const error = internalError(this.config.log, `rebuilding run ${row.uid} from its log`, err, { run_id: row.uid });
    const ended = await inTransaction(this.sql, async (tx) => {
      const done = await runs.endRun(tx, row.id, this.config.processId, RunState.FAILED, encodeOutcome({ error }));
      if (done) await queue.removeRunRows(tx, row.id);
      return done;
    });
    const old = this.owned.get(row.id);
    if (old) {
      endRunTrace(old.trace, "FAILED", { type: "pipewright.Internal", message: "its log could not be replayed" });
      this.disown(old);
      const final = ended ? await runs.loadRunByUid(this.sql, row.uid) : undefined;
      for (const w of old.waiters) w(final ? runFromRow(final) : undefined);
    }
  }

  /**
   * Brings memory back in line with the database after failed commits: what
   * a commit in doubt wrote is looked at (runs it created are loaded, claims
   * never delivered go back), and runs a failed batch changed are reloaded.
   * False when the database could not be read (the caller retries later).
   */
  async reloadPending(): Promise<boolean> {
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
        if (load.length || requeued)
          this.config.log.warn(
            { runs: load.length, attempts: requeued },
            `after a commit in doubt: ${load.length} runs it created loaded, ${requeued} undelivered attempts put back`,
          );
        if (requeued) this.hooks.poke();
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
      this.config.log.warn({ err }, `reloading runs after a failed commit: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
      return false;
    }
  }

  /** A run found finished in the database while we still held it (after a failed commit). */
  private finishLocally(run: OwnedRun, row: runs.RunRow | undefined): void {
    endRunTrace(run.trace, row ? RunState[row.state] : "UNKNOWN");
    this.disown(run);
    if (row) for (const w of run.waiters) w(runFromRow(row));
  }
}

/** The error a finished run ended with, for its span. */
function runError(run: OwnedRun): { type: string; message: string } | undefined {
  const outcome = run.machine.result?.outcome;
  return outcome && "error" in outcome ? { type: outcome.error.type, message: outcome.error.message } : undefined;
}

/**
 * "run finished": info when it failed or was cancelled (an operator wants those at the
 * default level), debug when it succeeded (at thousands of runs a second, a line per
 * healthy run would be most of the log and most of its cost).
 */
function logFinished(log: Logger, run: OwnedRun, view: Run): void {
  const ok = view.state === RunState.SUCCEEDED;
  if (!log.isLevelEnabled(ok ? "debug" : "info")) return;
  const outcome = view.outcome?.kind;
  const fields = {
    run_id: run.uid,
    run_name: run.name || undefined,
    state: RunState[view.state],
    duration_ms: Date.now() - run.createdAt,
    error_type: outcome?.case === "error" ? outcome.value.type : undefined,
  };
  if (ok) log.debug(fields, "run finished");
  else log.info(fields, "run finished");
}
