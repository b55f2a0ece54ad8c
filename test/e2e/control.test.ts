// Cancellation, pause/resume, timeouts, lost and silent workers, drain: each
// end to end against the real server.

import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { inParallel } from "../../client/pipeline-builder.js";
import { encodeValue } from "../../proto/runtime/values.js";
import { RunState, StepState } from "../../proto/gen/pipewright/v1/run_pb.js";
import * as ex from "../../examples/tasks.js";
import { outcomeOf } from "../support/run-outcome.js";
import { RawWorker } from "../support/raw-worker.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ heartbeatIntervalMs: 200 });
  await ts.worker({ tasks: t.testTasks, slots: 8 });
});
afterAll(() => ts?.stop());
afterEach(() => t.resetGates());

const states = async (run: { get(full: boolean): Promise<{ steps: { path: string; state: StepState }[] }> }) =>
  Object.fromEntries((await run.get(true)).steps.map((s) => [s.path, StepState[s.state]]));

describe("cancel", () => {
  it("stops running tasks (their AbortSignal fires), starts nothing new, runs finally, ends CANCELLED", async () => {
    const client = ts.client();
    const run = await client.submit(
      inParallel([t.gate.send("a"), t.gate.send("b"), t.gate.send("c")], { maxParallelism: 2 })
        .continueWith(t.echo)
        .finallyDo(ex.cleanup),
    );
    await until("a and b started", () => t.journal.includes("start a") && t.journal.includes("start b"));
    const cancelled = await run.cancel("enough");
    expect([RunState.CANCELLING, RunState.CANCELLED]).toContain(cancelled.state);
    const done = await run.wait();
    expect(done.state).toBe(RunState.CANCELLED);
    const out = outcomeOf(done);
    expect(!out.ok && [out.error.type, out.error.message]).toEqual(["pipewright.Cancelled", "run cancelled: enough"]);
    expect(out.state).toEqual({ cleaned: true }); // finally ran
    await until("both aborted", () => t.journal.includes("aborted a") && t.journal.includes("aborted b"));
    expect(t.journal).not.toContain("start c"); // never started
    expect(await states(run)).toMatchObject({
      "steps[0].group.branches[0].steps[0]": "CANCELLED",
      "steps[0].group.branches[2].steps[0]": "CANCELLED",
      "steps[1]": "CANCELLED",
      finally: "SUCCEEDED",
    });
    const again = await run.cancel().catch((e) => e);
    expect(grpc.status[again.code]).toBe("FAILED_PRECONDITION");
  });

  it("cancels child pipelines too", async () => {
    const run = await ts.client().submit(t.childGate.send("child").continueWith(t.echo));
    await until("child task started", () => t.journal.includes("start child"));
    await run.cancel();
    expect((await run.wait()).state).toBe(RunState.CANCELLED);
    await until("child task aborted", () => t.journal.includes("aborted child"));
  });
});

describe("pause and resume", () => {
  it("dispatches nothing while paused, then carries on", async () => {
    const run = await ts.client().submit(t.gate.send("p1").continueWith(t.echo).continueWith(t.echo));
    await until("first task started", () => t.journal.includes("start p1"));
    expect((await run.pause()).state).toBe(RunState.PAUSED);
    t.openGate("p1"); // the running task finishes...
    await until("p1 done", () => t.journal.includes("done p1"));
    await new Promise((r) => setTimeout(r, 400));
    const paused = await run.get(true);
    expect(paused.state).toBe(RunState.PAUSED); // ...but nothing new starts
    expect(StepState[paused.steps[1].state]).toBe("QUEUED");
    expect(grpc.status[(await run.pause().catch((e) => e)).code]).toBe("FAILED_PRECONDITION");
    expect((await run.resume()).state).toBe(RunState.RUNNING);
    expect(await run.result()).toEqual([["p1"]]);
    expect(grpc.status[(await run.resume().catch((e) => e)).code]).toBe("FAILED_PRECONDITION");
  });

  it("holds back attempts waiting in the queue while paused", async () => {
    const client = ts.client();
    const lonely = ex.multiply.withOptions({ queue: "pause-test" });
    const run = await client.submit(inParallel([lonely.send(1, 2), lonely.send(3, 4)]));
    await run.pause();
    const w = await ts.worker({ tasks: t.testTasks, queues: ["pause-test"], slots: 2 });
    await new Promise((r) => setTimeout(r, 700));
    expect(w.completed).toBe(0);
    await run.resume();
    expect(await run.result()).toEqual([2, 12]);
    expect(w.completed).toBe(2);
  });
});

describe("timeouts", () => {
  it("an execution timeout fails the attempt (pipewright.Timeout), aborts it on the worker, and retries apply", async () => {
    const slow = t.gate.withOptions({ executionTimeoutMs: 300, retry: { maxAttempts: 2, initialDelayMs: 10 } });
    const run = await ts.client().submit(slow.send("forever"));
    const out = outcomeOf(await run.wait());
    expect(!out.ok && out.error.type).toBe("pipewright.Timeout");
    expect(!out.ok && out.error.message).toContain("execution timeout of 300 ms");
    expect((await run.get(true)).steps[0].attempts).toBe(2);
    await until("aborted twice", () => t.journal.filter((e) => e === "aborted forever").length === 2);
  });

  it("an exceptionally step catches a timeout like any error; finally runs", async () => {
    const slow = t.gate.withOptions({ executionTimeoutMs: 200 });
    const run = await ts.client().submit(slow.send("late").exceptionally(ex.handleError, 7).finallyDo(ex.cleanup));
    const out = outcomeOf(await run.wait());
    expect(out).toMatchObject({ ok: true, value: -1, state: { cleaned: true } }); // handleError gives -1 for non-ValueErrors
  });

  it("a wait timeout fails a task no worker takes in time", async () => {
    const run = await ts.client().submit(ex.multiply.withOptions({ queue: "nobody", waitTimeoutMs: 300 }).send(1, 1));
    const out = outcomeOf(await run.wait());
    expect(!out.ok && [out.error.type, out.error.message]).toEqual(["pipewright.Timeout", "waited more than 300 ms for a worker"]);
  });

  it("a heartbeat timeout fails an attempt its worker stops mentioning, while the session stays alive", async () => {
    const raw = new RawWorker(ts.address, ["quiet"], 1, ["quiet-q"]);
    const quiet = { send: undefined } as never;
    void quiet;
    const run = await ts
      .client()
      .submit((await import("../../client/task-ref.js")).taskRef<[], number>("quiet", { queue: "quiet-q", heartbeatTimeoutMs: 300 }).send());
    await raw.waitForAssignments(1);
    const keepAlive = setInterval(() => raw.heartbeat([]), 100); // alive, but never mentions the attempt
    try {
      const out = outcomeOf(await run.wait());
      expect(!out.ok && out.error.type).toBe("pipewright.Timeout");
      expect(!out.ok && out.error.message).toContain("heartbeat timeout of 300 ms");
      await until("the worker was told to stop it", () => raw.cancels.length === 1);
    } finally {
      clearInterval(keepAlive);
      raw.drop();
    }
  });

  it("a task running longer than its heartbeat timeout completes: the SDK heartbeats it while it runs", async () => {
    const long = t.nap.withOptions({ heartbeatTimeoutMs: 300 });
    expect(await ts.client().submitAndWait(long.send(1200))).toBe(1200);
  });

  it("a run timeout fails the run and still runs finally", async () => {
    const run = await ts.client().submit(t.gate.send("never").finallyDo(ex.cleanup), { runTimeoutMs: 300 });
    const done = await run.wait();
    expect(done.state).toBe(RunState.FAILED);
    const out = outcomeOf(done);
    expect(!out.ok && [out.error.type, out.error.message]).toEqual(["pipewright.Timeout", "run timed out"]);
    expect(out.state).toEqual({ cleaned: true });
  });
});

describe("lost workers", () => {
  it("a worker whose stream breaks mid-task: the task is re-queued at once and run elsewhere", async () => {
    const raw = new RawWorker(ts.address, ["multiply"], 1, ["flaky-worker"]);
    const run = await ts.client().submit(ex.multiply.withOptions({ queue: "flaky-worker" }).send(6, 7));
    const [a] = await raw.waitForAssignments(1);
    raw.drop();
    const started = Date.now();
    await ts.worker({ tasks: t.testTasks, queues: ["flaky-worker"], slots: 1 });
    expect(await run.result()).toBe(42);
    expect(Date.now() - started).toBeLessThan(3000);
    // A late result from the dropped worker's attempt would be stale: the step ran again with a new attempt.
    expect(a.key!.attempt).toBe(1);
  });

  it("a worker that goes silent is dropped after 3 heartbeat intervals and its task runs elsewhere", async () => {
    const raw = new RawWorker(ts.address, ["add"], 1, ["silent"]);
    const run = await ts.client().submit(ex.add.withOptions({ queue: "silent" }).send(1, 2));
    await raw.waitForAssignments(1);
    await ts.worker({ tasks: t.testTasks, queues: ["silent"], slots: 1 });
    expect(await run.result()).toBe(3); // after ~600 ms of silence
    raw.drop();
  });

  it("a late result of a re-queued attempt is dropped", async () => {
    const raw = new RawWorker(ts.address, ["subtract"], 1, ["late"]);
    const run = await ts.client().submit(ex.subtract.withOptions({ queue: "late" }).send(10, 1));
    const [a] = await raw.waitForAssignments(1);
    await until(
      "the silent worker is dropped and the attempt re-queued",
      async () => (await ts.server.sql`select attempt, status from task_queue where status = 0`).length > 0,
    );
    const good = await ts.worker({ tasks: t.testTasks, queues: ["late"], slots: 1 });
    expect(await run.result()).toBe(9);
    raw.result(a.key!, encodeValue(-1)); // far too late, and from a dropped session
    expect(good.completed).toBeGreaterThan(0);
    raw.drop();
  });
});

describe("drain", () => {
  it("a worker asked to stop finishes what it holds, takes nothing new, and nothing runs twice", async () => {
    const drainer = await ts.worker({ tasks: t.testTasks, queues: ["drain"], slots: 3 });
    const client = ts.client();
    const napper = t.nap.withOptions({ queue: "drain" });
    const runs = await Promise.all([300, 300, 300].map((ms) => client.submit(napper.send(ms))));
    await until("three naps started", () => t.journal.filter((e) => e === "nap 300").length === 3);
    const later = await client.submit(napper.send(301));
    await drainer.stop();
    expect(drainer.state).toBe("stopped");
    for (const r of runs) expect(await r.result()).toBe(300);
    expect(t.journal.filter((e) => e === "nap 300")).toHaveLength(3); // none ran twice
    expect(t.journal).not.toContain("nap 301"); // the drained worker took nothing new
    await ts.worker({ tasks: t.testTasks, queues: ["drain"], slots: 1 });
    expect(await later.result()).toBe(301);
  });
});
