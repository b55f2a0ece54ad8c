// Execution and heartbeat timeouts (server/dispatch/attempt-timeouts.ts),
// driven directly: real PostgreSQL, a real worker stream that holds its
// attempt and heartbeats by hand, and the results the dispatcher sends where
// the engine would be. Deadlines are checked every 100 ms, so a timeout
// fires between its limit and about 100 ms (plus scheduling) later.

import { afterEach, describe, expect, it } from "vitest";
import { encodeValue } from "../../proto/runtime/values.js";
import { startDispatchHarness, type DispatchHarness } from "../support/dispatch-harness.js";
import { until } from "../support/until.js";

let h: DispatchHarness | undefined;
let keepAlive: NodeJS.Timeout | undefined;
afterEach(async () => {
  clearInterval(keepAlive);
  await h?.stop();
  h = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The one result the dispatcher sent, and how long after `since` it came. */
async function theFailure(h: DispatchHarness, since: number) {
  await until("the dispatcher failed the attempt", () => h.recorded.results.length > 0, 5000);
  expect(h.recorded.results).toHaveLength(1);
  const r = h.recorded.results[0];
  const error = r.result.outcome.case === "error" ? r.result.outcome.value : undefined;
  return { ...r, type: error?.type, message: error?.message, after: h.recorded.resultTimes[0] - since };
}

describe("attempt timeouts", () => {
  it("an execution timeout fails the attempt with pipewright.Timeout, tells the worker to cancel it, and drops its late result", async () => {
    h = await startDispatchHarness();
    const [row] = await h.enqueue({ task: "slow", executionTimeoutMs: 400 });
    const w = h.worker(["slow"]);
    const [a] = await w.waitForAssignments(1);
    const delivered = Date.now();
    keepAlive = setInterval(() => w.heartbeat([a.key!]), 100); // heartbeats do not extend an execution timeout
    const before = h.dispatcher.stats();

    const f = await theFailure(h, delivered);
    expect(f.after).toBeGreaterThanOrEqual(400 - 20); // delivered was read a little after the dispatcher's clock
    expect(f.after).toBeLessThan(400 + 400);
    expect([f.runId, f.step, f.attempt]).toEqual([row.runId, row.step, 1]);
    expect(f.result.key).toMatchObject({ runId: row.runUid, stepId: row.step, attempt: 1 });
    expect([f.type, f.message]).toEqual(["pipewright.Timeout", "attempt 1 ran longer than its execution timeout of 400 ms"]);
    await until("the worker was told to stop it", () => w.cancels.length === 1);
    expect(w.cancels[0]).toMatchObject({ runId: row.runUid, stepId: row.step, attempt: 1 });

    w.result(a.key!, encodeValue(1)); // too late
    await until("the late result was counted as stale", () => h!.dispatcher.stats().staleResults === 1);
    expect(h.recorded.results).toHaveLength(1); // and not forwarded
    expect(h.dispatcher.stats()).toEqual({ staleResults: 1, timedOut: 1, requeued: 0 });
    expect(before).toEqual({ staleResults: 0, timedOut: 0, requeued: 0 }); // a snapshot, not a live view
    expect(Object.isFrozen(before)).toBe(true);
  });

  it("a heartbeat timeout fails an attempt the worker's heartbeats stop naming, and tells the worker to cancel it", async () => {
    h = await startDispatchHarness();
    const [row] = await h.enqueue({ task: "quiet", heartbeatTimeoutMs: 300 });
    const w = h.worker(["quiet"]);
    await w.waitForAssignments(1);
    const delivered = Date.now();
    keepAlive = setInterval(() => w.heartbeat([]), 100); // the session is alive, but never names the attempt

    const f = await theFailure(h, delivered);
    expect(f.after).toBeGreaterThanOrEqual(300 - 20);
    expect(f.after).toBeLessThan(300 + 400);
    expect(f.result.key).toMatchObject({ runId: row.runUid, stepId: row.step, attempt: 1 });
    expect([f.type, f.message]).toEqual(["pipewright.Timeout", "attempt 1 no heartbeat for longer than its heartbeat timeout of 300 ms"]);
    await until("the worker was told to stop it", () => w.cancels.length === 1);
    expect(w.cancels[0]).toMatchObject({ runId: row.runUid, stepId: row.step, attempt: 1 });
    expect(h.dispatcher.stats().timedOut).toBe(1);
  });

  it("heartbeats naming the attempt extend its heartbeat deadline; it fails once they stop", async () => {
    h = await startDispatchHarness();
    await h.enqueue({ task: "steady", heartbeatTimeoutMs: 300 });
    const w = h.worker(["steady"]);
    const [a] = await w.waitForAssignments(1);
    keepAlive = setInterval(() => w.heartbeat([a.key!]), 100);
    await sleep(1200); // four heartbeat timeouts
    expect(h.recorded.results).toEqual([]);
    expect(w.cancels).toEqual([]);

    clearInterval(keepAlive);
    const lastHeartbeat = Date.now();
    const f = await theFailure(h, lastHeartbeat);
    expect(f.after).toBeGreaterThanOrEqual(300 - 110); // the last heartbeat may have gone out up to 100 ms earlier
    expect(f.after).toBeLessThan(300 + 400);
    expect([f.type, f.message]).toEqual(["pipewright.Timeout", "attempt 1 no heartbeat for longer than its heartbeat timeout of 300 ms"]);
    await until("the worker was told to stop it", () => w.cancels.length === 1);
  });
});
