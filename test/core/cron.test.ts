// server/core/cron.ts: seconds, 5 and 6 fields, time zones, the daylight
// saving changes of Europe/Berlin (spring forward, fall back), and invalid
// expressions refused with a violation naming the field and the fault.

import { describe, expect, it } from "vitest";
import { parseCron, validTimeZone, type CronSchedule } from "../../server/core/cron.js";

function cron(expression: string, zone = ""): CronSchedule {
  const { schedule, violations } = parseCron(expression, zone);
  expect(violations).toEqual([]);
  return schedule!;
}

/** The next `n` fire times after `from`, as ISO strings. */
function next(c: CronSchedule, from: string, n: number): string[] {
  const out: string[] = [];
  let at = Date.parse(from);
  for (let i = 0; i < n; i++) {
    at = c.nextAfter(at)!;
    out.push(new Date(at).toISOString());
  }
  return out;
}

describe("cron expressions", () => {
  it("6 fields fire at seconds, strictly after the given instant", () => {
    expect(next(cron("*/1 * * * * *"), "2026-01-01T00:00:00.000Z", 3)).toEqual([
      "2026-01-01T00:00:01.000Z",
      "2026-01-01T00:00:02.000Z",
      "2026-01-01T00:00:03.000Z",
    ]);
    expect(next(cron("*/15 * * * * *"), "2026-01-01T00:00:14.999Z", 2)).toEqual(["2026-01-01T00:00:15.000Z", "2026-01-01T00:00:30.000Z"]);
    expect(next(cron("5 0 12 * * *"), "2026-01-01T12:00:05.000Z", 1)).toEqual(["2026-01-02T12:00:05.000Z"]);
  });

  it("5 fields are the classic form: second 0", () => {
    expect(next(cron("30 9 * * MON-FRI"), "2026-01-02T10:00:00Z", 2)).toEqual(["2026-01-05T09:30:00.000Z", "2026-01-06T09:30:00.000Z"]);
  });

  it("reads the expression in its time zone (default UTC)", () => {
    expect(cron("0 0 9 * * *").timeZone).toBe("UTC");
    expect(next(cron("0 0 9 * * *", "America/New_York"), "2026-01-15T00:00:00Z", 1)).toEqual(["2026-01-15T14:00:00.000Z"]);
    expect(next(cron("0 0 9 * * *", "Asia/Kolkata"), "2026-01-15T00:00:00Z", 1)).toEqual(["2026-01-15T03:30:00.000Z"]);
  });

  it("previousBefore is the last fire strictly before", () => {
    const c = cron("*/2 * * * * *");
    expect(c.previousBefore(Date.parse("2026-01-01T00:00:02.000Z"))).toBe(Date.parse("2026-01-01T00:00:00.000Z"));
    expect(c.previousBefore(Date.parse("2026-01-01T00:00:02.001Z"))).toBe(Date.parse("2026-01-01T00:00:02.000Z"));
  });
});

describe("daylight saving time in Europe/Berlin", () => {
  const daily = cron("0 30 2 * * *", "Europe/Berlin");

  it("spring forward (29 March 2026, 02:00 -> 03:00): 02:30 does not exist, the fire comes at 03:00 CEST, once", () => {
    expect(next(daily, "2026-03-27T12:00:00Z", 3)).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET (UTC+1)
      "2026-03-29T01:00:00.000Z", // 03:00 CEST: the first instant after the gap
      "2026-03-30T00:30:00.000Z", // 02:30 CEST (UTC+2)
    ]);
  });

  it("fall back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice, the fire comes once, at the first", () => {
    expect(next(daily, "2026-10-24T12:00:00Z", 2)).toEqual([
      "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first of the two
      "2026-10-26T01:30:00.000Z", // 02:30 CET the next day
    ]);
  });

  it("an every-30-minutes pattern fires at each real instant through the repeated hour", () => {
    expect(next(cron("0 */30 * * * *", "Europe/Berlin"), "2026-10-25T00:10:00Z", 4)).toEqual([
      "2026-10-25T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T01:00:00.000Z", // 02:00 CET
      "2026-10-25T01:30:00.000Z", // 02:30 CET
      "2026-10-25T02:00:00.000Z", // 03:00 CET
    ]);
  });

  it("seconds keep counting through the spring gap", () => {
    expect(next(cron("*/20 * * * * *", "Europe/Berlin"), "2026-03-29T00:59:30Z", 3)).toEqual([
      "2026-03-29T00:59:40.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-29T01:00:20.000Z",
    ]);
  });
});

describe("refusals name the field and say what is wrong", () => {
  it.each([
    ["* * * *", "cron", "must have 6 fields (second minute hour day-of-month month day-of-week) or 5 (no seconds), got 4"],
    ["* * * * * * *", "cron", "got 7"],
    ["@daily", "cron", "got 1"],
    ["", "cron", "got 0"],
    ["61 * * * *", "cron", "invalid value for minute: 61"],
    ["* 61 * * * *", "cron", "invalid value for minute: 61"],
    ["60 * * * * *", "cron", "invalid value for second: 60"],
    ["0 0 30 2 *", "cron", "never fires"],
    ["a b c d e", "cron", "illegal characters"],
  ])("%j", (expression, field, description) => {
    const { schedule, violations } = parseCron(expression, "UTC", field);
    expect(schedule).toBeUndefined();
    expect(violations).toHaveLength(1);
    expect(violations[0].field).toBe(field);
    expect(violations[0].description).toContain(description);
  });

  it("a long expression is refused by its length, before parsing", () => {
    const { violations } = parseCron("0 ".repeat(150), "UTC");
    expect(violations).toEqual([{ field: "cron", description: "must be at most 200 characters, got 300" }]);
  });

  it("an unknown time zone is named, and the expression is still checked beside it", () => {
    expect(parseCron("61 * * * *", "Mars/Olympus_Mons", "schedule.cron", "schedule.time_zone").violations.map((v) => v.field)).toEqual([
      "schedule.time_zone",
      "schedule.cron",
    ]);
    expect(parseCron("* * * * *", "Mars/Olympus_Mons").violations[0].description).toContain('got "Mars/Olympus_Mons"');
    expect([validTimeZone("Europe/Berlin"), validTimeZone("UTC"), validTimeZone(""), validTimeZone("Europe/Nowhere"), validTimeZone("x".repeat(65))]).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});
