// What a due schedule does now: which fire times start a run, which are
// skipped and why, and when it fires next. Pure: the scheduler
// (server/schedule/) claims the schedule, asks this, and records the answer.
//
// Catch-up: the fires due at or before now (the schedule's next_fire_at and
// every cron time after it) are late when the server looks after downtime.
// Those at most `catchupWindowMs` late start a run, older ones are skipped as
// one range; the latest due fire always starts, however late (so window 0
// means "only the latest missed fire", and a schedule never silently loses its
// most recent fire). At most `maxFires` fires are planned at once: the rest
// stay due, and the next look goes on from there.
//
// Overlap, for the fires that are not too old: ALLOW starts each; SKIP starts
// the first unless a run of the schedule is still active, and skips the rest
// (the first's run is active then); CANCEL_PREVIOUS starts only the last
// (each earlier one would be cancelled by the next at once) with the active
// runs to cancel first.

import type { CronSchedule } from "./cron.js";

export type Overlap = "skip" | "allow" | "cancel_previous";

export interface PlannedFire {
  at: number;
  /** start: submit a run (after cancelling the schedule's active runs when cancelPrevious). */
  action: "start" | "skip";
  reason: string;
  cancelPrevious: boolean;
}

export interface FirePlan {
  fires: PlannedFire[];
  /** Due fires older than the catch-up window, skipped without a row each: the first and last of them. */
  missed?: { from: number; to: number };
  /** The next fire time after this plan; undefined: the cron has no more. */
  nextFireAt: number | undefined;
}

export interface PlanInput {
  cron: CronSchedule;
  /** The schedule's next fire time as stored (the first fire not yet planned). */
  nextFireAt: number;
  now: number;
  catchupWindowMs: number;
  overlap: Overlap;
  /** Run ids of the schedule's runs still active (or being started by a fire not yet submitted). */
  activeRuns: string[];
  maxFires: number;
}

export function planFires(input: PlanInput): FirePlan {
  const { cron, now, catchupWindowMs, maxFires } = input;
  if (input.nextFireAt > now) return { fires: [], nextFireAt: input.nextFireAt };
  let first = input.nextFireAt;
  let missed: FirePlan["missed"];
  const windowStart = now - catchupWindowMs;
  if (first < windowStart) {
    // Jump over the fires older than the window without walking them (a year of a schedule every second is 31 million).
    const inWindow = cron.nextAfter(windowStart - 1);
    const latestDue = cron.previousBefore(now + 1);
    const start = inWindow !== undefined && inWindow <= now ? inWindow : (latestDue ?? first);
    if (start > first) {
      missed = { from: first, to: cron.previousBefore(start) ?? first };
      first = start;
    }
  }
  const due: number[] = [];
  let at: number | undefined = first;
  while (at !== undefined && at <= now && due.length < maxFires) {
    due.push(at);
    at = cron.nextAfter(at);
  }
  return { fires: applyOverlap(due, input.overlap, input.activeRuns), missed, nextFireAt: at };
}

/** The overlap policy over fire times due now, in order (also TriggerSchedule's single fire). */
export function applyOverlap(due: number[], overlap: Overlap, activeRuns: string[]): PlannedFire[] {
  const start = (at: number, cancelPrevious = false): PlannedFire => ({ at, action: "start", reason: "", cancelPrevious });
  const skip = (at: number, reason: string): PlannedFire => ({ at, action: "skip", reason, cancelPrevious: false });
  switch (overlap) {
    case "allow":
      return due.map((at) => start(at));
    case "skip":
      return due.map((at, i) => {
        if (activeRuns.length) return skip(at, `overlap SKIP: run ${activeRuns[0]} of this schedule is still active`);
        return i === 0 ? start(at) : skip(at, `overlap SKIP: the run of the fire at ${iso(due[0])} is still active`);
      });
    case "cancel_previous":
      return due.map((at, i) =>
        i === due.length - 1 ? start(at, true) : skip(at, `overlap CANCEL_PREVIOUS: superseded by the fire at ${iso(due.at(-1)!)} (caught up together)`),
      );
  }
}

/** A fire time as the request ids and reasons write it: ISO 8601 with milliseconds, UTC. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The request id of a fire's run: derived from the schedule and the fire time, the same in every process and after every restart. */
export function fireRequestId(scheduleId: string, fireAt: number): string {
  return `schedule:${scheduleId}:${iso(fireAt)}`;
}

/** The request id of a TriggerSchedule fire with a client's request id. */
export function triggerRequestId(scheduleId: string, clientRequestId: string): string {
  return `schedule:${scheduleId}:trigger:${clientRequestId}`;
}
