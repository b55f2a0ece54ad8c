// server/core/fire-plan.ts: which due fires start a run, which are skipped,
// and the next fire time: catch-up after downtime (the window, the latest
// missed fire always), the cap per look, and the overlap policies.

import { describe, expect, it } from "vitest";
import { parseCron } from "../../server/core/cron.js";
import { fireRequestId, planFires, type PlanInput } from "../../server/core/fire-plan.js";

const T0 = Date.parse("2026-06-01T12:00:00.000Z");
const everySecond = parseCron("* * * * * *", "UTC").schedule!;
const everyMinute = parseCron("0 * * * * *", "UTC").schedule!;

function plan(over: Partial<PlanInput>) {
  return planFires({ cron: everySecond, nextFireAt: T0, now: T0, catchupWindowMs: 60_000, overlap: "allow", activeRuns: [], maxFires: 100, ...over });
}
const secs = (ms: number[]) => ms.map((t) => (t - T0) / 1000);

describe("due fires", () => {
  it("nothing before the next fire time", () => {
    expect(plan({ now: T0 - 1 })).toEqual({ fires: [], nextFireAt: T0 });
  });

  it("on time: the one due fire starts, the next is a second later", () => {
    const p = plan({ now: T0 + 3 });
    expect(p.fires).toEqual([{ at: T0, action: "start", reason: "", cancelPrevious: false }]);
    expect([p.nextFireAt, p.missed]).toEqual([T0 + 1000, undefined]);
  });

  it("after downtime within the window: every missed fire starts", () => {
    const p = plan({ now: T0 + 10_500, catchupWindowMs: 60_000 });
    expect(secs(p.fires.map((f) => f.at))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(p.fires.every((f) => f.action === "start")).toBe(true);
    expect([p.nextFireAt, p.missed]).toEqual([T0 + 11_000, undefined]);
  });

  it("after downtime past the window: the fires older than the window are one skipped range, the rest start", () => {
    const p = plan({ now: T0 + 30_000, catchupWindowMs: 5_000 });
    expect(secs(p.fires.map((f) => f.at))).toEqual([25, 26, 27, 28, 29, 30]);
    expect(p.missed).toEqual({ from: T0, to: T0 + 24_000 });
    expect(p.nextFireAt).toBe(T0 + 31_000);
  });

  it("window 0: only the latest missed fire starts, however old", () => {
    const p = planFires({
      cron: everyMinute,
      nextFireAt: T0,
      now: T0 + 3 * 3600_000 + 59_000,
      catchupWindowMs: 0,
      overlap: "allow",
      activeRuns: [],
      maxFires: 100,
    });
    expect(p.fires.map((f) => f.at)).toEqual([T0 + 3 * 3600_000]);
    expect(p.missed).toEqual({ from: T0, to: T0 + 3 * 3600_000 - 60_000 });
    expect(p.nextFireAt).toBe(T0 + 3 * 3600_000 + 60_000);
  });

  it("a year away from a schedule every second is planned without walking 31 million fires", () => {
    const year = 365 * 24 * 3600_000;
    const p = plan({ now: T0 + year, catchupWindowMs: 2_000 });
    expect(secs(p.fires.map((f) => f.at))).toEqual([year / 1000 - 2, year / 1000 - 1, year / 1000]);
    expect(p.missed).toEqual({ from: T0, to: T0 + year - 3000 });
  });

  it("at most maxFires at once: the rest stay due for the next look", () => {
    const p = plan({ now: T0 + 50_000, maxFires: 10 });
    expect(secs(p.fires.map((f) => f.at))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(p.nextFireAt).toBe(T0 + 10_000);
    const rest = plan({ nextFireAt: p.nextFireAt!, now: T0 + 50_000, maxFires: 100 });
    expect(secs(rest.fires.map((f) => f.at))[0]).toBe(10);
    expect(rest.fires).toHaveLength(41);
  });
});

describe("overlap", () => {
  it("SKIP: skips every fire while a run is active, naming it", () => {
    const p = plan({ now: T0 + 1000, overlap: "skip", activeRuns: ["run-1"] });
    expect(p.fires.map((f) => [f.action, f.reason])).toEqual([
      ["skip", "overlap SKIP: run run-1 of this schedule is still active"],
      ["skip", "overlap SKIP: run run-1 of this schedule is still active"],
    ]);
    expect(p.nextFireAt).toBe(T0 + 2000); // skipped fires still move the schedule on
  });

  it("SKIP with none active: the first starts, the ones caught up with it are skipped", () => {
    const p = plan({ now: T0 + 2000, overlap: "skip" });
    expect(p.fires.map((f) => f.action)).toEqual(["start", "skip", "skip"]);
    expect(p.fires[1].reason).toContain("the run of the fire at 2026-06-01T12:00:00.000Z is still active");
  });

  it("ALLOW: every fire starts, active runs or not", () => {
    expect(plan({ now: T0 + 2000, overlap: "allow", activeRuns: ["run-1"] }).fires.map((f) => f.action)).toEqual(["start", "start", "start"]);
  });

  it("CANCEL_PREVIOUS: the last fire starts, cancelling the active runs first; the earlier ones are superseded", () => {
    const p = plan({ now: T0 + 2000, overlap: "cancel_previous", activeRuns: ["run-1"] });
    expect(p.fires.map((f) => [f.action, f.cancelPrevious])).toEqual([
      ["skip", false],
      ["skip", false],
      ["start", true],
    ]);
    expect(p.fires[0].reason).toContain("superseded by the fire at 2026-06-01T12:00:02.000Z");
  });
});

it("a fire's request id is derived from the schedule and the fire time, in milliseconds", () => {
  expect(fireRequestId("nightly", T0)).toBe("schedule:nightly:2026-06-01T12:00:00.000Z");
  expect(fireRequestId("x".repeat(128), T0).length).toBeLessThanOrEqual(200);
});
