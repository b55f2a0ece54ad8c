// The local runner's delayed start, on a test's clock: a run given startDelayMs or startAt
// waits that long (through the runner's `sleep`, so a day passes in no time) before its first
// step, as the server would; a start already past runs at once.

import { describe, expect, it } from "vitest";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { task } from "../../worker-sdk/task.js";

/** A test's clock: `sleep` moves it on at once and remembers how long each wait was. */
function testClock(start: number) {
  let now = start;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
  };
}

describe("runLocally with a delayed start", () => {
  it("waits the delay before the first step, on the given clock", async () => {
    const clock = testClock(Date.parse("2026-12-01T00:00:00Z"));
    let ranAt = 0;
    const stamp = task("stamp", () => (ranAt = clock.now()));
    const out = await runLocally(stamp.send(), { tasks: [stamp], ...clock, startDelayMs: 24 * 3600_000 });
    expect(out.ok).toBe(true);
    expect(clock.waits).toEqual([24 * 3600_000]);
    expect(new Date(ranAt).toISOString()).toBe("2026-12-02T00:00:00.000Z");
  });

  it("waits until startAt; a startAt already past does not wait; both at once are refused", async () => {
    const clock = testClock(Date.parse("2026-12-01T00:00:00Z"));
    const noop = task("noop", () => 1);
    await runLocally(noop.send(), { tasks: [noop], ...clock, startAt: new Date("2026-12-01T09:30:00Z") });
    expect(clock.waits).toEqual([9.5 * 3600_000]);
    await runLocally(noop.send(), { tasks: [noop], ...clock, startAt: new Date("2026-11-30T00:00:00Z") });
    expect(clock.waits).toHaveLength(1);
    await expect(runLocally(noop.send(), { tasks: [noop], ...clock, startAt: new Date(), startDelayMs: 1 })).rejects.toThrow(/not both/);
  });
});
