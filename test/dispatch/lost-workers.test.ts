// Attempts whose worker went away (server/dispatch/dispatcher.ts lost()):
// re-queued at once, and failed with pipewright.WorkerLost, through the same
// path as the timeouts (attempt-failures.ts), once they have lost their
// worker maxLostAttempts times. Real PostgreSQL, a real worker stream that
// breaks without a word.

import { afterEach, describe, expect, it } from "vitest";
import { startDispatchHarness, type DispatchHarness } from "../support/dispatch-harness.js";
import { until } from "../support/until.js";

let h: DispatchHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

describe("lost workers", () => {
  it("a broken stream re-queues what its session held; the attempt that reached maxLostAttempts fails with pipewright.WorkerLost", async () => {
    h = await startDispatchHarness({ config: { maxLostAttempts: 2 } });
    const [once, fresh] = await h.enqueue({ task: "crashy", lostCount: 1 }, { task: "crashy" });
    const w = h.worker(["crashy"], 2);
    await w.waitForAssignments(2);
    w.drop();

    await until("both attempts re-queued", () => h!.dispatcher.stats().requeued === 2);
    await until("the dispatcher failed one", () => h!.recorded.results.length === 1);
    const [f] = h.recorded.results;
    expect([f.runId, f.step, f.attempt]).toEqual([once.runId, once.step, 1]);
    expect(f.result.key).toBeUndefined(); // known by its queue row only, as before
    expect(f.result.outcome).toMatchObject({
      case: "error",
      value: { type: "pipewright.WorkerLost", message: "the attempt lost its worker 2 times (limit 2)" },
    });

    const rows = await h.sql<{ step: number; status: number; lost_count: number }[]>`select step, status, lost_count from task_queue order by step`;
    expect(rows).toEqual([
      { step: once.step, status: 0, lost_count: 2 },
      { step: fresh.step, status: 0, lost_count: 1 },
    ]);
    expect(h.dispatcher.stats()).toEqual({ staleResults: 0, timedOut: 0, requeued: 2 });
  });
});
