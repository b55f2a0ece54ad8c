// The wake timers of held runs (server/engine/wake-timers.ts): one timer per run at its
// earliest wait's end, set again as waits change, none for a run without timed waits; and
// the safety net that wakes again a run whose due wait did not end (a lost wake would
// leave it waiting for ever).

import { describe, expect, it } from "vitest";
import { inParallel, sleep, waitForSignal } from "../../client/pipeline-builder.js";
import { RunMachine } from "../../server/core/run-machine.js";
import { ownedRun } from "../../server/engine/owned-run.js";
import { WakeTimers } from "../../server/engine/wake-timers.js";
import { memoryLog } from "../support/memory-log.js";

function runOf(pipeline: ReturnType<typeof sleep>, at: number) {
  const machine = new RunMachine(pipeline.toProto());
  machine.apply({ type: "start", at });
  return ownedRun({ id: 1, uid: "r1", namespace: "default", requestId: "", name: "", createdAt: at, startAt: at, deadline: undefined, machine, lastSeq: 0 });
}

describe("wake timers", () => {
  it("fire once at the run's earliest wait, not before; a run without timed waits gets none", async () => {
    const woken: number[] = [];
    const timers = new WakeTimers(() => woken.push(Date.now()), memoryLog().logger);
    const start = Date.now();
    const run = runOf(inParallel([sleep(150), sleep(400)]) as never, start);
    timers.arm(run);
    expect(run.wakeAt).toBe(start + 150);
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toHaveLength(1);
    expect(woken[0]).toBeGreaterThanOrEqual(start + 149); // a timer may fire a millisecond early by the wall clock
    const signalOnly = runOf(waitForSignal("go") as never, start);
    timers.arm(signalOnly);
    expect([signalOnly.wakeAt, signalOnly.wakeTimer]).toEqual([undefined, undefined]);
    timers.forget(run);
  });

  it("the safety net wakes again a run whose due wait did not end, says so, and leaves others alone", () => {
    const woken: string[] = [];
    const log = memoryLog();
    const timers = new WakeTimers((r) => woken.push(r.uid), log.logger);
    const now = Date.now();
    const lost = runOf(sleep(10) as never, now - 60_000); // due a minute ago
    const onTime = runOf(sleep(60_000) as never, now);
    timers.arm(lost);
    timers.arm(onTime);
    lost.wakeTimer?.clear(); // its wake was lost
    woken.length = 0;
    expect(timers.late(now, 5000)).toBe(1);
    expect(woken).toEqual(["r1"]);
    expect(log.lines().some((l) => l.level === "warn" && /has a wait due \d+ ms ago that did not end: woken again/.test(l.msg))).toBe(true);
    timers.forget(lost);
    timers.forget(onTime);
    expect(timers.late(now + 120_000, 5000)).toBe(0); // forgotten runs are not woken
  });
});
