// The server's structured log (server/observe/logger.ts), read as an operator's
// log store would: a real server, PostgreSQL and workers, a logger writing JSON
// lines into memory. Runs that succeed, retry, time out; a worker that connects
// and one that dies holding an attempt; a stored run the server cannot rebuild
// and one it cannot read (internal errors, each with its reference). Every line
// must be a JSON object with level, time and msg, and each event must carry the
// fields that find it again: run_id, step, attempt, worker_id, ref.

import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { taskRef } from "../../client/task-ref.js";
import * as ex from "../../examples/tasks.js";
import { memoryLog, type LogLine, type MemoryLog } from "../support/memory-log.js";
import { RawWorker } from "../support/raw-worker.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";
import { until } from "../support/until.js";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

let ts: TestServer;
let log: MemoryLog;
let sdkWorkerId = "";

beforeAll(async () => {
  log = memoryLog("debug");
  ts = await startTestServer({ heartbeatIntervalMs: 200 }, log.logger);
  const w = await ts.worker({ tasks: [...ex.allTasks, t.flaky, t.gate], slots: 4, name: "logs-test-worker" });
  await until("the worker connected", () => ts.server.dispatcher.workerCount === 1);
  sdkWorkerId = ts.server.dispatcher.workers()[0].id;
  expect(w).toBeDefined();
});
afterAll(async () => {
  t.resetGates();
  await ts?.stop();
});

/** The lines with this message (exact, or matching). */
const find = (msg: string | RegExp, where: (l: LogLine) => boolean = () => true) =>
  log.lines().filter((l) => (typeof msg === "string" ? l.msg === msg : msg.test(l.msg)) && where(l));

describe("structured logs", () => {
  it("every line is one JSON object with a level, an ISO time, a message and its component", async () => {
    await ts.client().submitAndWait(ex.multiply.send(3, 2));
    expect(log.raw.length).toBeGreaterThan(3);
    for (const raw of log.raw) {
      expect(raw.endsWith("\n")).toBe(true);
      expect(raw.slice(0, -1)).not.toContain("\n"); // one line: stacks stay inside the JSON string
      const line = JSON.parse(raw) as LogLine;
      expect(LEVELS).toContain(line.level);
      expect(Number.isNaN(Date.parse(line.time))).toBe(false);
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof line.msg).toBe("string");
      expect(line.process_id).toBe(ts.server.processId);
      expect(["server", "engine", "dispatch", "database", "embedded-postgres", "api"]).toContain(line.component);
      // Each bound field once (a child of a component's logger would repeat "component").
      expect(raw.split('"component":').length, raw).toBe(2);
      expect(raw.split('"process_id":').length, raw).toBe(2);
    }
    expect(find("server started")).toHaveLength(1);
    expect(find("server started")[0]).toMatchObject({ level: "info", component: "server", address: ts.address });
  });

  it("worker connected: info with worker_id, queues and slots", () => {
    const [connected] = find(/^worker .* connected/, (l) => l.worker_id === sdkWorkerId);
    expect(connected).toMatchObject({ level: "info", component: "dispatch", worker_name: "logs-test-worker", slots: 4, queues: ["default"] });
  });

  it("run accepted and run finished carry the run's id; finished says the state and how long it took", async () => {
    const ok = await ts.client().submit(ex.multiply.send(6, 7), { name: "logged-ok" });
    expect(await ok.result()).toBe(42);
    const failed = await ts.client().submit(ex.fail.send("no"), { name: "logged-failure" });
    await failed.wait();

    expect(find("run accepted", (l) => l.run_id === ok.id)).toEqual([
      expect.objectContaining({ level: "debug", component: "engine", run_name: "logged-ok", tasks: 1 }),
    ]);
    // A run that succeeded is routine (debug); one that failed is for the operator (info).
    await until("both finished lines", () => find("run finished", (l) => l.run_id === ok.id || l.run_id === failed.id).length === 2);
    const [okEnd] = find("run finished", (l) => l.run_id === ok.id);
    expect(okEnd).toMatchObject({ level: "debug", component: "engine", state: "SUCCEEDED" });
    expect(okEnd.duration_ms).toEqual(expect.any(Number));
    const [failedEnd] = find("run finished", (l) => l.run_id === failed.id);
    expect(failedEnd).toMatchObject({ level: "info", state: "FAILED", error_type: "ValueError", run_name: "logged-failure" });
  });

  it("a task that fails and retries: each attempt assigned and finished at debug, with run_id, step, attempt and worker_id", async () => {
    // flaky(2) fails its first try (retry number 1) and succeeds on the second.
    const run = await ts.client().submit(t.flaky.withOptions({ retry: { maxAttempts: 3, initialDelayMs: 10 } }).send(2));
    expect(await run.result()).toBe(2);
    const [step] = (await run.get(true)).steps.filter((s) => s.task === "flaky");
    const finished = find("attempt finished", (l) => l.run_id === run.id);
    expect(finished.map((l) => [l.step, l.attempt, l.outcome, l.worker_id, l.level])).toEqual([
      [step.stepId, 1, "error", sdkWorkerId, "debug"], // its error_type: the task's own (Flaky)
      [step.stepId, 2, "value", sdkWorkerId, "debug"],
    ]);
    expect(find("attempt assigned", (l) => l.run_id === run.id).map((l) => l.attempt)).toEqual([1, 2]);
  });

  it("an execution timeout and a wait timeout: warn, with run_id, step, attempt, the timeout and its limit", async () => {
    // The SDK worker stops a task at its execution timeout by itself: the server's own
    // timeout is for a worker that does not, as this raw one (it heartbeats, never answers).
    const raw = new RawWorker(ts.address, ["hangs"], 1);
    const beating = setInterval(() => raw.heartbeat(), 50);
    try {
      await until("the raw worker connected", () => ts.server.dispatcher.workers().some((w) => w.tasks.has("hangs")));
      const rawId = ts.server.dispatcher.workers().find((w) => w.tasks.has("hangs"))!.id;
      const slow = await ts.client().submit(taskRef("hangs").withOptions({ executionTimeoutMs: 200 }).send());
      const [assignment] = await raw.waitForAssignments(1);
      await slow.wait();
      const [timedOut] = find(/^attempt timed out/, (l) => l.run_id === slow.id);
      expect(timedOut).toMatchObject({
        level: "warn",
        component: "dispatch",
        step: assignment.key!.stepId,
        attempt: assignment.key!.attempt,
        task: "hangs",
        worker_id: rawId,
        timeout: "executionTimeout",
        limit_ms: 200,
      });
    } finally {
      clearInterval(beating);
      raw.drop();
    }

    const unserved = await ts.client().submit(ex.multiply.withOptions({ queue: "nobody", waitTimeoutMs: 300 }).send(1, 1));
    await unserved.wait();
    const [waited] = find(/^attempt timed out/, (l) => l.run_id === unserved.id);
    expect(waited).toMatchObject({ level: "warn", component: "engine", step: expect.any(Number), attempt: 1, timeout: "waitTimeout", limit_ms: 300 });
  });

  it("a worker lost holding an attempt: warn for the worker (worker_id) and for the attempt re-queued (run_id, step, attempt)", async () => {
    const raw = new RawWorker(ts.address, ["sticky"], 1);
    await until("the raw worker connected", () => ts.server.dispatcher.workers().some((w) => w.tasks.has("sticky")));
    const rawId = ts.server.dispatcher.workers().find((w) => w.tasks.has("sticky"))!.id;
    // `sticky` is served only by the raw worker: its attempt is handed there.
    const sticky = await ts.client().submit(taskRef("sticky").send());
    const [assignment] = await raw.waitForAssignments(1);
    raw.drop();
    await until("the attempt re-queued", () => find(/^attempt re-queued/, (l) => l.run_id === sticky.id).length === 1);
    const [requeued] = find(/^attempt re-queued/, (l) => l.run_id === sticky.id);
    expect(requeued).toMatchObject({
      level: "warn",
      component: "dispatch",
      run_id: assignment.key!.runId,
      step: assignment.key!.stepId,
      attempt: assignment.key!.attempt,
      task: "sticky",
      worker_id: rawId,
      lost_count: 1,
    });
    const [lost] = find(/^worker .* lost/, (l) => l.worker_id === rawId);
    expect(lost).toMatchObject({ level: "warn", component: "dispatch", requeued: 1, slots: 1, queues: ["default"] });
    expect(find(/^worker .* connected/, (l) => l.worker_id === rawId)).toHaveLength(1);
    await ts.client().rpc.cancelRun({ runId: sticky.id });

    // A worker whose stream breaks while it holds nothing is lost all the same (a crash); one
    // that drains first (the SDK's stop) disconnects cleanly, at info.
    const idle = new RawWorker(ts.address, ["idle"], 2);
    await until("the idle worker connected", () => ts.server.dispatcher.workers().some((w) => w.tasks.has("idle")));
    const idleId = ts.server.dispatcher.workers().find((w) => w.tasks.has("idle"))!.id;
    idle.drop();
    await until("the idle worker's end logged", () => find(/^worker .* (lost|disconnected)/, (l) => l.worker_id === idleId).length === 1);
    expect(find(/^worker .* (lost|disconnected)/, (l) => l.worker_id === idleId)[0]).toMatchObject({
      level: "warn",
      requeued: 0,
      msg: expect.stringMatching(/ lost;/),
    });
    const stopping = await ts.worker({ tasks: [ex.add], slots: 1 });
    await until("the second SDK worker connected", () => ts.server.dispatcher.workerCount === 2);
    const stoppingId = ts.server.dispatcher.workers().find((w) => w.id !== sdkWorkerId)!.id;
    await stopping.stop();
    await until("the SDK worker's end logged", () => find(/^worker .* (lost|disconnected)/, (l) => l.worker_id === stoppingId).length === 1);
    expect(find(/^worker .* (lost|disconnected)/, (l) => l.worker_id === stoppingId)[0]).toMatchObject({
      level: "info",
      requeued: 0,
      msg: expect.stringMatching(/ disconnected$/),
    });
  });

  it("internal errors: logged at error with the reference the client was given", async () => {
    // A stored run the server cannot rebuild from its log: it ends FAILED, its error names a reference.
    const damaged = randomUUID();
    await ts.server.sql`
      insert into runs (uid, name, state, spec, created_at, task_count, owner_id)
      values (${damaged}::uuid, 'damaged', 1, ${Buffer.from([0x0a, 0xff, 0xff])}, now(), 1, null)`;
    await ts.server.engine.adoptOrphans();
    const { run } = await ts.client().rpc.waitRun({ runId: damaged, timeout: { seconds: 5n, nanos: 0 } });
    expect(RunState[run!.state]).toBe("FAILED");
    const runRef = /\(ref ([0-9a-f]{8})\)/.exec((run!.outcome!.kind.value as { message: string }).message)![1];
    const [rebuilt] = find(/^internal error/, (l) => l.ref === runRef);
    expect(rebuilt).toMatchObject({ level: "error", component: "engine", run_id: damaged });
    expect((rebuilt.err as { message: string; stack: string }).stack).toEqual(expect.any(String));

    // A stored outcome that cannot be read: GetRun answers INTERNAL with a reference; the cause is logged under it.
    const unreadable = randomUUID();
    await ts.server.sql`
      insert into runs (uid, name, state, spec, created_at, finished_at, outcome, task_count, owner_id)
      values (${unreadable}::uuid, 'unreadable', ${RunState.SUCCEEDED}, ${Buffer.alloc(0)}, now(), now(), ${Buffer.from([0x0a, 0xff, 0xff])}, 1, null)`;
    const refused = await ts
      .client()
      .rpc.getRun({ runId: unreadable })
      .catch((e: grpc.ServiceError) => e);
    expect((refused as grpc.ServiceError).code).toBe(grpc.status.INTERNAL);
    const apiRef = /\(ref ([0-9a-f]{8})\)/.exec((refused as grpc.ServiceError).details)![1];
    const [mapped] = find(/failed \[/, (l) => l.ref === apiRef);
    expect(mapped).toMatchObject({ level: "error", component: "api", method: expect.stringMatching(/GetRun/) });
    expect((mapped.err as { message: string }).message).toEqual(expect.any(String));
  });

  it("a logger at warn writes no info or debug line", async () => {
    const quiet = memoryLog("warn");
    const other = await startTestServer({}, quiet.logger);
    try {
      await other.worker({ tasks: ex.allTasks, slots: 1 });
      await other.client().submitAndWait(ex.multiply.send(2, 2));
      await other
        .client()
        .submit(ex.fail.send("no"))
        .then((r) => r.wait());
    } finally {
      await other.stop();
    }
    expect(quiet.lines().filter((l) => l.level === "info" || l.level === "debug")).toEqual([]);
  });
});
