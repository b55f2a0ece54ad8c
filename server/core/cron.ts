// Cron expressions and time zones: the one module that knows the cron library
// (croner, no dependencies, seconds and IANA zones). Everything else asks this
// module, so a change of library is a change of this file.
//
// Expressions have 6 fields (second minute hour day-of-month month
// day-of-week) or 5 (the classic form, second 0). croner also reads a 7th
// field (year) and nicknames (@daily): refused here, so that what a schedule
// means is what the README says.
//
// Daylight saving time (croner's behaviour, pinned by test/core/cron.test.ts):
// a wall time the spring change skips (02:30 in Europe/Berlin on the last
// Sunday of March) fires at the first instant after the gap (03:00); a wall
// time passed twice in autumn fires once, at its first occurrence. A pattern
// of every n minutes or seconds fires at every real instant it matches, so
// the repeated hour in autumn fires twice as often in wall-clock terms.

import { Cron } from "croner";
import type { Violation } from "@pipewright/protocol";

/** Longest cron expression accepted (characters): a real one is under 60. */
export const MAX_CRON_LENGTH = 200;
/** Longest time zone name accepted (IANA names are under 40). */
export const MAX_TIME_ZONE_LENGTH = 64;
export const DEFAULT_TIME_ZONE = "UTC";

/** A parsed cron expression in a time zone. */
export interface CronSchedule {
  readonly expression: string;
  readonly timeZone: string;
  /** The first fire time strictly after `afterMs` (ms since the epoch); undefined: none (a date that never comes). */
  nextAfter(afterMs: number): number | undefined;
  /** The last fire time strictly before `beforeMs`; undefined: none. */
  previousBefore(beforeMs: number): number | undefined;
}

/** Whether `zone` is an IANA time zone name this runtime knows ("" is not: callers default it first). */
export function validTimeZone(zone: string): boolean {
  if (!zone || zone.length > MAX_TIME_ZONE_LENGTH) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses `expression` in `zone` (empty: UTC). Violations name `field` and
 * `zoneField`; none: the schedule. A pattern that never fires (30 February)
 * is a violation too.
 */
export function parseCron(expression: string, zone: string, field = "cron", zoneField = "time_zone"): { schedule?: CronSchedule; violations: Violation[] } {
  const violations: Violation[] = [];
  const timeZone = zone || DEFAULT_TIME_ZONE;
  if (!validTimeZone(timeZone)) violations.push({ field: zoneField, description: `must be an IANA time zone name such as Europe/Berlin, got ${quote(zone)}` });
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (expression.length > MAX_CRON_LENGTH) {
    violations.push({ field, description: `must be at most ${MAX_CRON_LENGTH} characters, got ${expression.length}` });
  } else if (fields.length !== 5 && fields.length !== 6) {
    violations.push({
      field,
      description: `must have 6 fields (second minute hour day-of-month month day-of-week) or 5 (no seconds), got ${fields.length} in ${quote(expression)}`,
    });
  }
  if (violations.some((v) => v.field === field)) return { violations };
  let cron: Cron;
  try {
    // A bad zone is reported above; the pattern is still read (in UTC) so that both are named at once.
    cron = new Cron(fields.join(" "), {
      timezone: violations.length ? DEFAULT_TIME_ZONE : timeZone,
      paused: true,
      mode: fields.length === 5 ? "5-part" : "6-part",
    });
  } catch (err) {
    violations.push({ field, description: `${cronMessage(err)} in ${quote(expression)}` });
    return { violations };
  }
  const schedule: CronSchedule = {
    expression,
    timeZone,
    nextAfter(afterMs) {
      // croner's next run is strictly after the given instant, at whole seconds.
      const next = cron.nextRun(new Date(afterMs));
      return next ? next.getTime() : undefined;
    },
    previousBefore(beforeMs) {
      const [previous] = cron.previousRuns(1, new Date(beforeMs));
      return previous && previous.getTime() < beforeMs ? previous.getTime() : undefined;
    },
  };
  if (schedule.nextAfter(Date.UTC(2000, 0, 1)) === undefined) violations.push({ field, description: `never fires: no date matches ${quote(expression)}` });
  return violations.length ? { violations } : { schedule, violations };
}

/** croner's message without its class prefix ("CronPattern: Invalid value for minute: 61" -> "invalid value for minute: 61"). */
function cronMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const bare = text.replace(/^Cron\w*:\s*/, "").slice(0, 200);
  return bare.charAt(0).toLowerCase() + bare.slice(1);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}
