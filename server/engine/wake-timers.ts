// The wake timers of the runs held here: one timer per run, at its earliest
// wait's end or timeout (RunMachine.nextWakeAt), whatever number of waits it
// holds. Nothing but the timer is held while a run sleeps: no worker slot, no
// queue row, no CPU. When it fires, the run is given a "wake" input (through
// the committer, like any input), and the timer is set again after that
// commit for the wait that comes next.

import { setLongTimeout } from "@pipewright/protocol";
import type { Logger } from "../observe/logger.js";
import type { OwnedRun } from "./owned-run.js";

export class WakeTimers {
  /** Runs with a wait that ends by itself or times out (see late). */
  private readonly waking = new Set<OwnedRun>();

  constructor(
    /** Commits a wake of the run. */
    private readonly wake: (run: OwnedRun) => void,
    private readonly log: Logger,
  ) {}

  /** Sets the run's timer to its next wait's end (none: no timer). */
  arm(run: OwnedRun): void {
    const at = run.machine.nextWakeAt();
    if (at === undefined) this.waking.delete(run);
    else this.waking.add(run);
    if (at === run.wakeAt) return;
    run.wakeTimer?.clear();
    run.wakeTimer = undefined;
    run.wakeAt = at;
    if (at === undefined) return;
    run.wakeTimer = setLongTimeout(
      () => {
        run.wakeTimer = undefined;
        run.wakeAt = undefined;
        this.wake(run);
      },
      Math.max(0, at - Date.now()),
      { unref: true },
    );
  }

  /** The run is let go (finished, parked, moved): no timer. */
  forget(run: OwnedRun): void {
    run.wakeTimer?.clear();
    this.waking.delete(run);
  }

  /**
   * The safety net (every second or so): a run with a wait due more than
   * `lateMs` ago is woken again, and it is said loudly. A wake costs nothing
   * when nothing is due, so a spare one is harmless; a lost one would leave
   * the run waiting for ever. Returns how many were late.
   */
  late(now: number, lateMs: number): number {
    let late = 0;
    for (const run of this.waking) {
      const at = run.machine.nextWakeAt();
      if (at === undefined || at > now - lateMs) continue;
      late++;
      this.log.warn({ run_id: run.uid, due_ms_ago: now - at }, `run ${run.uid} has a wait due ${now - at} ms ago that did not end: woken again`);
      this.wake(run);
    }
    return late;
  }
}
