// The local runner's wait steps on a VirtualClock (worker-sdk/virtual-clock.ts): a
// pipeline that sleeps a day, or waits hours for a signal, is tested in milliseconds,
// and gives what the server gives (test/core/differential-core.test.ts compares them
// on random pipelines with sleeps and signals).

import { describe, expect, it } from "vitest";
import { inParallel, sleep, waitForEvent, waitForSignal } from "../../client/pipeline-builder.js";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { task } from "../../worker-sdk/task.js";
import { VirtualClock } from "../../worker-sdk/virtual-clock.js";

const DAY = 24 * 3600_000;
const T0 = Date.parse("2026-12-01T00:00:00Z");

describe("local runner waits on a virtual clock", () => {
  it("a day's sleep passes in no time, and the next task runs a day later", async () => {
    const clock = new VirtualClock(T0);
    let ranAt = 0;
    const stamp = task("stamp", (x: number) => ((ranAt = clock.now()), x + 1));
    const started = Date.now();
    const out = await runLocally(stamp.send(1).sleep(DAY).continueWith(stamp), { tasks: [stamp], clock });
    expect(out).toMatchObject({ ok: true, value: 3 });
    expect(new Date(ranAt).toISOString()).toBe("2026-12-02T00:00:00.000Z");
    expect(Date.now() - started).toBeLessThan(5000); // not a day (a loose bound: the point is the virtual day)
  });

  it("branches sleeping at once wake in real-time order: two 1 h sleeps end at 1 h, not 2 h", async () => {
    const clock = new VirtualClock(T0);
    const times: number[] = [];
    const at = task("at", (k: string) => (times.push(clock.now() - T0), k));
    const out = await runLocally(
      inParallel([sleep(3600_000).continueWith(at.send("a")), sleep(3600_000).continueWith(at.send("b")), sleep(60_000).continueWith(at.send("c"))]),
      {
        tasks: [at],
        clock,
      },
    );
    expect(out.ok).toBe(true);
    expect(times).toEqual([60_000, 3600_000, 3600_000]);
  });

  it("a signal sent an hour in ends the wait then; one sent before the wait is kept; a timeout fails with pipewright.Timeout", async () => {
    let clock = new VirtualClock(T0);
    const when = task("when", (v: unknown) => ({ v, at: clock.now() - T0 }));
    const one = await runLocally(waitForSignal("approve").continueWith(when), {
      tasks: [when],
      clock,
      signals: [{ name: "approve", payload: "yes", atMs: 3600_000 }],
    });
    expect(one).toMatchObject({ ok: true, value: { v: "yes", at: 3600_000 } });
    clock = new VirtualClock(T0);
    const kept = await runLocally(sleep(DAY).waitForSignal("go").continueWith(when), { tasks: [when], clock, signals: [{ name: "go", payload: 7 }] });
    expect(kept).toMatchObject({ ok: true, value: { v: 7, at: DAY } });
    const late = await runLocally(waitForSignal("approve", { timeoutMs: 60_000 }), {
      tasks: [],
      clock: new VirtualClock(T0),
      signals: [{ name: "approve", atMs: 120_000 }],
    });
    expect(late.ok).toBe(false);
    expect(late.ok === false && [late.error.type, late.error.message, late.error.origin]).toEqual([
      "pipewright.Timeout",
      "waited more than 60000 ms for signal approve",
      "steps[0]",
    ]);
  });

  it("an event ends the waits begun by then; one published before is not kept", async () => {
    const out = await runLocally(sleep(1000).waitForEvent("paid", { timeoutMs: 10_000 }), {
      tasks: [],
      clock: new VirtualClock(T0),
      events: [
        { name: "paid", payload: "too early", atMs: 500 },
        { name: "paid", payload: "in time", atMs: 2000 },
      ],
    });
    expect(out).toMatchObject({ ok: true, value: "in time" });
    const missed = await runLocally(waitForEvent("paid", { timeoutMs: 1000 }), {
      tasks: [],
      clock: new VirtualClock(T0),
      events: [{ name: "other", atMs: 10 }],
    });
    expect(missed.ok).toBe(false);
  });
});
