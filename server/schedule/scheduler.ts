// The scheduler loop every server process runs. One timer, set for the
// earliest next fire of any schedule (never one per schedule), a safety look
// every pollMs, and a NOTIFY from whichever process creates or changes a
// schedule (so a new schedule fires on time wherever it was made).
//
// A look claims the due schedules with FOR UPDATE SKIP LOCKED, and in that one
// short transaction records their fires (schedule_fires, on conflict do
// nothing) and moves next_fire_at on; after the commit it submits the runs of
// the fires it recorded, each with a request id derived from the schedule and
// the fire time. Exactly one run per fire, across processes and crashes:
// - two processes cannot claim one schedule at once (the row lock), and a
//   fire recorded is recorded once (the primary key);
// - a crash before the commit records nothing and moves nothing: the next
//   look claims the same fires again;
// - a crash between the commit and the submit leaves the fire PENDING: every
//   look also retries the pending fires older than staleMs, and the derived
//   request id makes a submit that did happen return the same run.

import { PipewrightError } from "../core/errors.js";
import { parseCron, type CronSchedule } from "../core/cron.js";
import { applyOverlap, fireRequestId, iso, planFires, triggerRequestId, type Overlap } from "../core/fire-plan.js";
import type { Logger } from "../observe/logger.js";
import { CHANNELS } from "../store/channels.js";
import { inTransaction, type Sql, type Tx } from "../store/database.js";
import {
  activeRunsOf,
  claimStalePendingFires,
  fireByRequestId,
  FIRE_PENDING,
  FIRE_SKIPPED,
  getFire,
  pruneFires,
  recordFires,
  type FireRow,
  type NewFire,
} from "../store/schedule-fires.js";
import { advanceSchedule, claimDueSchedules, earliestNextFire, getSchedule, getScheduleById, type ScheduleRow } from "../store/schedules.js";
import { fireRun, type RunStarter } from "./fire-runs.js";

export interface SchedulerConfig {
  log: Logger;
  /** The safety look, also how often stale pending fires are retried (default 2000 ms). */
  pollMs?: number;
  /** A pending fire this old is retried by whoever looks (default 3000 ms; a normal submit takes milliseconds). */
  staleMs?: number;
}

/** Schedules claimed per transaction: short transactions, and a busy process leaves the rest to others. */
const CLAIM_BATCH = 50;
/** Fires planned per schedule per claim (catch-up of a schedule every second after an hour away: 36 claims). */
const MAX_FIRES_PER_CLAIM = 100;
/** When a look found due schedules it could not claim (another process holds them), the next look this much later, not at once. */
const BUSY_RETRY_MS = 25;
const OVERLAPS: Record<number, Overlap> = { 1: "skip", 2: "allow", 3: "cancel_previous" };

export class Scheduler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private unlisten?: () => Promise<void>;
  private readonly crons = new Map<string, CronSchedule>();
  private readonly pollMs: number;
  private readonly staleMs: number;

  constructor(
    private readonly sql: Sql,
    private readonly engine: RunStarter,
    private readonly config: SchedulerConfig,
  ) {
    this.pollMs = config.pollMs ?? 2000;
    this.staleMs = config.staleMs ?? 3000;
  }

  async start(): Promise<void> {
    const listener = await this.sql.listen(CHANNELS.schedules, () => {
      this.config.log.debug("a schedule was created or changed: looking now");
      this.wake();
    });
    this.unlisten = () => listener.unlisten();
    this.wake();
  }

  /** Stops the loop and waits for a look in progress (its submits included). */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.unlisten?.().catch(() => {});
    await this.running;
  }

  /** Looks now (a schedule changed), or right after the look in progress. */
  wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.look()
      .catch((err) => this.config.log.warn({ err }, `schedules: ${(err as Error).message}`))
      .then((delay) => {
        this.running = undefined;
        if (this.closed) return;
        if (this.again) {
          this.again = false;
          delay = 0;
        }
        this.timer = setTimeout(() => this.wake(), delay ?? this.pollMs);
        this.timer.unref();
      });
  }

  /** One look: due schedules fired, stale pending fires retried. Returns how long until the next look. */
  private async look(): Promise<number> {
    for (;;) {
      const { claimed, pending } = await this.claimOnce();
      await Promise.all(
        groupBySchedule(pending).map(async (list) => {
          for (const { schedule, fire } of list) await fireRun(this.sql, this.engine, schedule, fire, this.config.log);
        }),
      );
      if (claimed < CLAIM_BATCH || this.closed) break;
    }
    await this.retryStale();
    // Still due after the claims: another process holds it and is firing it now.
    const earliest = await earliestNextFire(this.sql);
    const wait = earliest ? earliest.getTime() - Date.now() : this.pollMs;
    return Math.min(this.pollMs, wait > 0 ? wait : BUSY_RETRY_MS);
  }

  /** One transaction: claims due schedules, records their fires, moves them on. */
  private async claimOnce(): Promise<{ claimed: number; pending: { schedule: ScheduleRow; fire: FireRow }[] }> {
    const now = Date.now();
    return inTransaction(this.sql, async (tx) => {
      const rows = await claimDueSchedules(tx, new Date(now), CLAIM_BATCH);
      const pending: { schedule: ScheduleRow; fire: FireRow }[] = [];
      for (const schedule of rows) {
        for (const fire of await this.fireDue(tx, schedule, now)) pending.push({ schedule, fire });
      }
      return { claimed: rows.length, pending };
    });
  }

  /** Records a claimed schedule's due fires and moves it on; returns the pending fires recorded (their runs to start). */
  private async fireDue(tx: Tx, schedule: ScheduleRow, now: number): Promise<FireRow[]> {
    const cron = this.cronOf(schedule);
    if (!cron) {
      // Validated at create and update: only a library change could make a stored expression unreadable.
      this.config.log.error(
        { schedule_id: schedule.schedule_id, cron: schedule.cron },
        `schedule ${schedule.schedule_id}: cron no longer readable; it stops firing`,
      );
      await advanceSchedule(tx, schedule.id, null, null);
      return [];
    }
    const overlap = OVERLAPS[schedule.overlap];
    const plan = planFires({
      cron,
      nextFireAt: schedule.next_fire_at!.getTime(),
      now,
      catchupWindowMs: schedule.catchup_window_ms,
      overlap,
      activeRuns: overlap === "allow" ? [] : await activeRunsOf(tx, schedule.id),
      maxFires: MAX_FIRES_PER_CLAIM,
    });
    const fires: NewFire[] = plan.fires.map((f) => ({
      fireAt: new Date(f.at),
      outcome: f.action === "start" ? FIRE_PENDING : FIRE_SKIPPED,
      requestId: fireRequestId(schedule.schedule_id, f.at),
      reason: f.reason,
      triggered: false,
      cancelPrevious: f.cancelPrevious,
    }));
    if (plan.missed) {
      const { from, to } = plan.missed;
      const range = from === to ? `the fire at ${iso(from)}` : `the fires from ${iso(from)} to ${iso(to)}`;
      const reason = `missed: ${range} came more than the catch-up window (${schedule.catchup_window_ms} ms) before the server looked`;
      fires.unshift({
        fireAt: new Date(to),
        outcome: FIRE_SKIPPED,
        requestId: fireRequestId(schedule.schedule_id, to),
        reason,
        triggered: false,
        cancelPrevious: false,
      });
    }
    const recorded = await recordFires(tx, schedule.id, fires);
    const last = plan.fires.at(-1)?.at ?? plan.missed?.to;
    await advanceSchedule(tx, schedule.id, plan.nextFireAt === undefined ? null : new Date(plan.nextFireAt), last === undefined ? null : new Date(last));
    if (recorded.length) await pruneFires(tx, schedule.id);
    return recorded.filter((f) => f.outcome === FIRE_PENDING);
  }

  /** Pending fires whose submit did not finish (their process died, or is stuck): started now, once. */
  private async retryStale(): Promise<void> {
    const stale = await claimStalePendingFires(this.sql, this.staleMs, CLAIM_BATCH);
    for (const fire of stale) {
      const schedule = await getScheduleById(this.sql, fire.schedule_id);
      if (!schedule) continue;
      this.config.log.info(
        { schedule_id: schedule.schedule_id, fire_at: iso(fire.fire_at.getTime()) },
        `schedule ${schedule.schedule_id}: retrying a pending fire`,
      );
      await fireRun(this.sql, this.engine, schedule, fire, this.config.log);
    }
  }

  /**
   * TriggerSchedule: fires now, under the schedule's overlap policy, and
   * returns the fire with its run. With a client request id, a repeated call
   * returns the first call's fire (a first call cut short is finished here).
   */
  async trigger(namespace: string, scheduleId: string, clientRequestId: string): Promise<FireRow> {
    const requestedAt = Date.now();
    const taken = await inTransaction(this.sql, async (tx) => {
      const schedule = await getSchedule(tx, namespace, scheduleId, true);
      if (!schedule) throw new PipewrightError("NOT_FOUND", `no schedule with id ${scheduleId}`);
      if (clientRequestId) {
        const earlier = await fireByRequestId(tx, schedule.id, triggerRequestId(scheduleId, clientRequestId));
        if (earlier) return { schedule, fire: earlier };
      }
      const overlap = OVERLAPS[schedule.overlap];
      const active = overlap === "allow" ? [] : await activeRunsOf(tx, schedule.id);
      // Cron fires fall on whole seconds: a trigger at one moves a millisecond on, and so does one that meets another trigger.
      for (let at = requestedAt % 1000 === 0 ? requestedAt + 1 : requestedAt; ; at++) {
        const [planned] = applyOverlap([at], overlap, active);
        const requestId = clientRequestId ? triggerRequestId(scheduleId, clientRequestId) : fireRequestId(scheduleId, at);
        const outcome = planned.action === "start" ? FIRE_PENDING : FIRE_SKIPPED;
        const fire: NewFire = { fireAt: new Date(at), outcome, requestId, reason: planned.reason, triggered: true, cancelPrevious: planned.cancelPrevious };
        const [recorded] = await recordFires(tx, schedule.id, [fire]);
        if (recorded) {
          await advanceSchedule(tx, schedule.id, schedule.next_fire_at, new Date(at));
          await pruneFires(tx, schedule.id);
          return { schedule, fire: recorded };
        }
      }
    });
    if (taken.fire.outcome !== FIRE_PENDING) return taken.fire;
    await fireRun(this.sql, this.engine, taken.schedule, taken.fire, this.config.log);
    return (await getFire(this.sql, taken.schedule.id, taken.fire.fire_at)) ?? taken.fire;
  }

  private cronOf(s: ScheduleRow): CronSchedule | undefined {
    const key = `${s.time_zone}\u0000${s.cron}`;
    let cron = this.crons.get(key);
    if (!cron) {
      cron = parseCron(s.cron, s.time_zone).schedule;
      if (!cron) return undefined;
      if (this.crons.size >= 10_000) this.crons.clear(); // a cache, bounded: schedules come and go
      this.crons.set(key, cron);
    }
    return cron;
  }
}

/** Fires of one schedule in order (CANCEL_PREVIOUS, SKIP depend on it), schedules side by side. */
function groupBySchedule<T extends { schedule: ScheduleRow }>(items: T[]): T[][] {
  const groups = new Map<number, T[]>();
  for (const item of items) groups.set(item.schedule.id, [...(groups.get(item.schedule.id) ?? []), item]);
  return [...groups.values()];
}
