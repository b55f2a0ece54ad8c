// Parking: a run that has only waited (a sleep, a signal, an event; no task
// queued or running) for a while, with nothing due soon, leaves this
// process's memory, so 100,000
// sleeping runs cost rows in PostgreSQL, not gigabytes here. Its row says it
// is parked and when it must be back (wake_at: its next wait's end or
// timeout, or its run deadline). It comes back, rebuilt from its log like any
// run loaded after a restart, when that time is near (this process reads the
// runs due every second) or when something arrives for it through the inbox
// (a signal, an event, a control; also from this very process).
//
// A park goes through the group committer under the run's order key: no
// batch of the run is in flight while it is parked, and what arrives for the
// run meanwhile waits behind the park, then finds the run gone and goes
// through the inbox.

import type { Logger } from "../observe/logger.js";
import type { Sql } from "../store/database.js";
import * as runs from "../store/run-store.js";
import type { OwnedRun } from "./owned-run.js";
import type { RunRegistry } from "./run-registry.js";

export interface ParkingConfig {
  processId: string;
  /**
   * Park a run that has only waited for this long (ms), with nothing of it due
   * sooner; 0: never park. A wait that ends soon (a webhook answering in a
   * second) then costs no write and no reload.
   */
  parkWaitsOverMs: number;
  log: Logger;
}

/** How far ahead of their wake time parked runs are loaded again: their timers then fire on time. */
const LOAD_AHEAD_MS = 2000;
/** Parked runs loaded per look, at most. */
const LOAD_PER_LOOK = 1000;

export class Parking {
  /** Runs parked and loaded again by this process, since it started. */
  parked = 0;
  unparked = 0;
  private unparking = false;
  /** Runs loaded for what their inbox holds: not parked again before it is applied (their next commit). */
  private readonly loadedForInbox = new Set<number>();
  /** Runs that only wait, by when they last changed: parked once that is parkWaitsOverMs ago (see sweep). */
  private readonly idleSince = new Map<OwnedRun, number>();

  constructor(
    private readonly sql: Sql,
    private readonly registry: RunRegistry,
    private readonly config: ParkingConfig,
    /** Asks the committer to park the run (a "park" item under the run's order key). */
    private readonly requestPark: (run: OwnedRun) => void,
    /** Looks at this process's inbox again (entries for runs just loaded). */
    private readonly lookAtInbox: () => void,
  ) {}

  /**
   * After a commit (`committed`) or a load: parks the run if it only waits,
   * with nothing due soon and nobody following it here.
   */
  consider(run: OwnedRun, committed = true): void {
    if (this.loadedForInbox.has(run.id)) {
      if (!committed) return;
      this.loadedForInbox.delete(run.id);
    }
    if (!this.config.parkWaitsOverMs) return;
    if (this.parkable(run)) this.idleSince.set(run, Date.now());
    else this.idleSince.delete(run);
  }

  /** Every second or so: the runs that have only waited for parkWaitsOverMs, and still do, are parked. */
  sweep(now = Date.now()): void {
    for (const [run, since] of this.idleSince) {
      if (this.registry.byId(run.id) !== run || !this.parkable(run, now)) {
        this.idleSince.delete(run);
        continue;
      }
      if (now - since < this.config.parkWaitsOverMs || run.parking) continue;
      this.idleSince.delete(run);
      run.parking = true;
      this.requestPark(run);
    }
  }

  /** The committer's park items: the runs still parkable are parked (one statement), then let go. */
  async park(candidates: OwnedRun[]): Promise<void> {
    const now = Date.now();
    const ready = candidates.filter((run) => {
      run.parking = false;
      return this.registry.byId(run.id) === run && !this.registry.busyElsewhere(run, undefined) && this.parkable(run, now);
    });
    if (ready.length === 0) return;
    try {
      const parked = new Set(
        await runs.parkRuns(
          this.sql,
          this.config.processId,
          ready.map((run) => ({ id: run.id, wakeAt: wakeAtOf(run) })),
        ),
      );
      for (const run of ready) if (parked.has(run.id)) this.registry.park(run);
      this.parked += parked.size;
    } catch (err) {
      this.config.log.warn({ err, runs: ready.length }, `parking ${ready.length} waiting runs: ${(err as Error).message}; they stay in memory`);
    }
  }

  /** Loads this process's parked runs due soon (called every second or so). */
  async loadDue(): Promise<void> {
    if (this.unparking) return;
    this.unparking = true;
    try {
      for (;;) {
        const ids = await runs.unparkDue(this.sql, this.config.processId, LOAD_AHEAD_MS, LOAD_PER_LOOK);
        await this.load(ids);
        if (ids.length < LOAD_PER_LOOK) return;
      }
    } finally {
      this.unparking = false;
    }
  }

  /** Inbox entries came for runs not in memory: those parked here are loaded, and the inbox looked at again. */
  async loadFor(runIds: number[]): Promise<void> {
    const ids = await runs.unparkRuns(this.sql, this.config.processId, [...new Set(runIds)]);
    await this.loadForCommit(ids);
    if (ids.length) this.lookAtInbox();
  }

  /**
   * A control or signal for a run parked by this process: it is loaded now,
   * and the caller applies it here (and so knows what it did). False when the
   * run is not parked here (held, another process's, finished, unknown).
   */
  async loadIfParkedHere(uid: string): Promise<boolean> {
    if (!this.config.parkWaitsOverMs) return false; // nothing is ever parked: no query
    await this.loadForCommit(await runs.unparkByUid(this.sql, this.config.processId, uid));
    return this.registry.knows(uid);
  }

  /** Loads runs for something about to be committed to them: not parked again before that commit. */
  private async loadForCommit(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    for (const id of ids) this.loadedForInbox.add(id);
    await this.load(ids);
    // Something that changes nothing (a control the run no longer accepts) brings no commit: look again later.
    setTimeout(() => {
      for (const id of ids) {
        const run = this.registry.byId(id);
        if (this.loadedForInbox.delete(id) && run) this.consider(run);
      }
    }, 5000).unref();
  }

  private async load(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.registry.load(await runs.loadRunsByIds(this.sql, ids));
      this.unparked += ids.length;
    } catch (err) {
      // Unparked but not loaded: owned by this process, in no one's memory. Noted like
      // runs adopted but not loaded: the next batch loads them first (reloadPending).
      this.config.log.error({ err, runs: ids.length }, `loading ${ids.length} parked runs failed: ${(err as Error).message}`);
      this.registry.unsure.noteAdopted(ids);
    }
  }

  private parkable(run: OwnedRun, now = Date.now()): boolean {
    const m = run.machine;
    if (!m.isOnlyWaiting() || run.waiters.size || run.listeners.size || this.registry.needsReload.has(run.id)) return false;
    const wake = wakeAtOf(run);
    return wake === undefined || wake - now >= this.config.parkWaitsOverMs;
  }
}

/** When a parked run must be back: its next wait's end or timeout, or its deadline, whichever is first. */
function wakeAtOf(run: OwnedRun): number | undefined {
  const wake = run.machine.nextWakeAt();
  if (run.deadline === undefined) return wake;
  return wake === undefined ? run.deadline : Math.min(wake, run.deadline);
}
