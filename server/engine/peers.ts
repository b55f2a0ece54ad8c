// The other server processes on the same database: runs whose owner died are
// adopted here; results and controls for runs another process owns go to its
// inbox (and theirs for ours come to this one's); a wait here on a run owned
// elsewhere is woken by its owner's announcement that it finished.

import { RunState, type Run } from "@pipewright/protocol";
import { PipewrightError } from "../core/errors.js";
import { controlRefusal, type RunControl } from "../core/run-control.js";
import { CHANNELS } from "../store/channels.js";
import type { Sql } from "../store/database.js";
import { inboxEntryDone, readInbox, sendControl, type InboxEntry } from "../store/inbox.js";
import { EventKind } from "../store/run-events.js";
import { livePeerCount } from "../store/process-registry.js";
import * as runs from "../store/run-store.js";
import type { RunRegistry } from "./run-registry.js";
import { encodeArrival } from "./event-codec.js";
import type { SignalSent } from "./items.js";
import { runFromRow } from "./run-views.js";
import type { Logger } from "../observe/logger.js";

export interface PeersConfig {
  processId: string;
  /** A server process silent this long is dead: its runs are taken over. */
  processTimeoutMs: number;
  /**
   * How often a wait on a run owned elsewhere reads the database anyway: the
   * safety net for an announcement missed (a peer that started less than a
   * second ago does not announce to us yet).
   */
  remoteWaitPollMs: number;
  log: Logger;
}

export type ForwardedControl = "cancel" | "pause" | "resume" | "signal";

export class Peers {
  /** Other server processes are alive: announce finished runs to them (their clients may wait on our runs). */
  private alive = false;
  /** Waits here on runs another process owns, by run uid: woken by that process's announcement. */
  private readonly remoteWaits = new Map<string, Set<() => void>>();
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly sql: Sql,
    private readonly registry: RunRegistry,
    private readonly config: PeersConfig,
    /** Entries came to this process's inbox: look at them. */
    private readonly lookAtInbox: () => void,
  ) {}

  /** See PeersConfig.remoteWaitPollMs. */
  get remoteWaitPollMs(): number {
    return this.config.remoteWaitPollMs;
  }

  /** Whether other processes are alive (finished runs are then announced). */
  get any(): boolean {
    return this.alive;
  }

  /** Listens for inbox entries, finished and deleted runs and arriving processes; announces this one. */
  async start(): Promise<void> {
    await this.refresh();
    const inbox = await this.sql.listen(CHANNELS.inbox, (owner) => {
      if (owner === this.config.processId) this.lookAtInbox();
    });
    const finished = await this.sql.listen(CHANNELS.finished, (uids) => {
      for (const uid of uids.split(",")) for (const wake of this.remoteWaits.get(uid) ?? []) wake();
    });
    // A run deleted through any process (DeleteRun) is no longer answered from this one's memory.
    const deleted = await this.sql.listen(CHANNELS.deleted, (uid) => this.registry.forget(uid));
    // A process that starts says so: the others announce finished runs to it from then on (not after their next look).
    const arrivals = await this.sql.listen(CHANNELS.peers, (id) => {
      if (id !== this.config.processId) this.alive = true;
    });
    await this.sql`select pg_notify(${CHANNELS.peers}, ${this.config.processId})`;
    this.unlisten = async () => {
      await inbox.unlisten();
      await finished.unlisten();
      await deleted.unlisten();
      await arrivals.unlisten();
    };
  }

  async stop(): Promise<void> {
    await this.unlisten?.().catch(() => {});
  }

  async refresh(): Promise<void> {
    this.alive = (await livePeerCount(this.sql, this.config.processId, this.config.processTimeoutMs)) > 0;
  }

  /**
   * Takes over active runs no live process owns (their owner died, or this
   * is the first start) and rebuilds them from their event log.
   */
  async adoptOrphans(): Promise<number> {
    const adopted = await runs.adoptOrphanRuns(this.sql, this.config.processId, this.config.processTimeoutMs, 1000);
    if (adopted.length === 0) return 0;
    // Parked runs stay parked, ours now: loaded when due or when something arrives for them (engine/parking.ts).
    const ids = adopted.filter((r) => !r.parked).map((r) => r.id);
    try {
      if (ids.length) await this.registry.load(await runs.loadRunsByIds(this.sql, ids));
    } catch (err) {
      this.registry.unsure.noteAdopted(ids); // they are ours now: nobody else will take them
      throw err;
    }
    this.lookAtInbox();
    return adopted.length;
  }

  /**
   * Runs this process thought it owned were taken over by another process (it
   * was presumed dead): forget them here. Their waiters follow them through
   * the database; what arrives for them from now on goes to the new owner.
   */
  async dropMovedRuns(candidates: number[]): Promise<void> {
    try {
      const moved = await runs.runsOwnedElsewhere(this.sql, this.config.processId, candidates);
      for (const id of moved) {
        const run = this.registry.byId(id);
        if (run) this.registry.moved(run);
      }
      if (moved.length)
        this.config.log.warn({ runs: moved.length }, `${moved.length} runs were taken over by another server process; they are no longer run here`);
    } catch (err) {
      this.config.log.warn({ err }, `checking run ownership: ${(err as Error).message}`);
    }
  }

  /** Results and controls other processes received for runs this one owns. */
  async readOwnInbox(): Promise<InboxEntry[]> {
    try {
      return await readInbox(this.sql, this.config.processId, 2000);
    } catch (err) {
      this.config.log.warn({ err }, `reading the inbox: ${(err as Error).message}`);
      return [];
    }
  }

  /** A control for a run another process owns: through its inbox; answers once applied. */
  async forwardControl(uid: string, action: ForwardedControl, reason: string, signal?: SignalSent): Promise<Run> {
    const row = await runs.loadRunByUid(this.sql, uid);
    if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    const refusal = controlRefusal(row.state as RunState, action, uid);
    if (refusal) throw new PipewrightError("FAILED_PRECONDITION", refusal);
    const entry = await sendControl(this.sql, row.id, EventKind[action === "signal" ? "signal" : action], signal ? encodeArrival(signal) : Buffer.from(reason));
    for (const until = Date.now() + 10_000; Date.now() < until;) {
      if (await inboxEntryDone(this.sql, entry)) return runFromRow((await runs.loadRunByUid(this.sql, uid))!);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new PipewrightError("UNAVAILABLE", `the ${action} of run ${uid} is recorded but its owner has not applied it yet; it will`);
  }

  /** Why a control for a run not held here cannot be applied, as the error its caller gets. */
  async controlRefusal(uid: string, action: RunControl): Promise<PipewrightError> {
    const row = await runs.loadRunByUid(this.sql, uid);
    if (!row) return new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    const refusal = controlRefusal(row.state as RunState, action, uid);
    if (refusal) return new PipewrightError("FAILED_PRECONDITION", refusal);
    return new PipewrightError("UNAVAILABLE", `run ${uid} is owned by another server process; retry`);
  }

  /**
   * Sleeps until one of `uids` (runs owned elsewhere) is announced finished,
   * `ms` pass, or `signal` aborts. `shareWake` receives the wake-up function,
   * for other wakers (waitRuns: the runs it waits on that are held here).
   */
  async sleepOnRemote(uids: string[], ms: number, signal?: AbortSignal, shareWake?: (wake: () => void) => void): Promise<void> {
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
}
