// Big payloads: shared, never multiplied per branch; the same message limits
// on every side; a precise, final error for what can never fit; errors that
// can always be read back.

import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inParallel, type Pipeline } from "../../client/pipeline-builder.js";
import { RunFailedError } from "../../client/client.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { RunView } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { PayloadSchema, TaskErrorSchema, ValueSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { taskRef } from "../../client/task-ref.js";
import { task } from "../../worker-sdk/task.js";
import { RawWorker } from "../support/raw-worker.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const MB = 1024 * 1024;
const len = task("len", (s: string) => s.length);
const sum = task("sum", (xs: number[]) => xs.reduce((a, b) => a + b, 0));
const makeBig = task("make_big", (n: number) => "x".repeat(n));
const echo = task("echo", (s: string) => s);
const failBig = task("fail_big", (n: number) => {
  throw new Error("e".repeat(n));
});

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [len, sum, makeBig, echo, failBig], slots: 8 });
});
afterAll(() => ts?.stop());

async function queueAndBlobBytes(runId: string) {
  const [r] = await ts.server.sql<{ rows: number; assignments: number; blobs: number; blob_bytes: number }[]>`
    select (select count(*) from task_queue q where q.run_id = r.id)::int as rows,
           (select coalesce(max(length(q.assignment)), 0) from task_queue q where q.run_id = r.id)::int as assignments,
           (select count(*) from payload_blobs b where b.run_id = r.id)::int as blobs,
           (select coalesce(sum(length(b.data)), 0) from payload_blobs b where b.run_id = r.id)::int as blob_bytes
    from runs r where r.uid = ${runId}::uuid`;
  return r;
}

describe("big payloads are shared, not copied per branch", () => {
  it("an 8 MB argument given to a 64-branch group is stored once; every branch gets it", async () => {
    const big = "y".repeat(8 * MB);
    const branches = Array.from({ length: 64 }, () => len.partial());
    const client = ts.client();
    // Queue "parked": no worker serves it yet, so the rows can be looked at.
    const parked = len.withOptions({ queue: "parked" });
    const p = (inParallel(branches.map(() => parked.partial())) as Pipeline<number[]>).withInitial({ args: [big] }).continueWith(sum);
    const run = await client.submit(p);
    const stored = await queueAndBlobBytes(run.id);
    expect(stored.rows).toBe(64);
    expect(stored.assignments).toBeLessThan(2048); // each row refers to the payload
    expect(stored.blobs).toBe(1);
    expect(stored.blob_bytes).toBeGreaterThanOrEqual(8 * MB);
    const w = await ts.worker({ tasks: [len], queues: ["parked"], slots: 4 });
    expect(await run.result(60_000)).toBe(64 * 8 * MB);
    await w.stop();
  }, 90_000);

  it("an 8 MB result fanned out to 64 branches commits once and every branch gets it (its commit used to fail every 1.6 s forever)", async () => {
    const client = ts.client();
    const p = makeBig
      .send(8 * MB)
      .continueWith(inParallel(Array.from({ length: 64 }, () => len.partial())))
      .continueWith(sum);
    const run = await client.submit(p);
    expect(await run.result(60_000)).toBe(64 * 8 * MB);
  }, 90_000);

  it("an SDK worker takes a 5 MB argument (grpc-js receives 4 MiB by default)", async () => {
    expect(await ts.client().submitAndWait(len.send("z".repeat(5 * MB)))).toBe(5 * MB);
  });

  it("100 slots of 100 KB arguments reach a worker in messages of at most 4 MiB", async () => {
    const raw = new RawWorker(ts.address, ["len_raw"], 100);
    const messages: number[] = [];
    (raw as unknown as { stream: { on(e: string, f: (m: { kind: { case: string; value: { tasks: unknown[] } } }) => void): void } }).stream.on("data", (m) => {
      if (m.kind.case === "assignments") messages.push(m.kind.value.tasks.length);
    });
    const arg = create(ValueSchema, { kind: { case: "payload", value: create(PayloadSchema, { data: new Uint8Array(100 * 1024).fill(65) }) } });
    const rpc = ts.client().rpc;
    await rpc.batchSubmitRuns({
      requests: Array.from({ length: 100 }, () => ({ pipeline: { steps: [{ kind: { case: "task", value: { task: "len_raw", args: [arg] } } }] } })),
    });
    const got = await raw.waitForAssignments(100, 30_000);
    expect(got.every((a) => a.args[0].kind.case === "payload" && (a.args[0].kind.value as { data: Uint8Array }).data.length === 100 * 1024)).toBe(true);
    // 100 x 100 KB = 10 MB: at least three messages, none over ~4 MiB (40 assignments).
    expect(messages.reduce((a, b) => a + b, 0)).toBe(100);
    expect(messages.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...messages)).toBeLessThanOrEqual(41);
    raw.drop();
  }, 60_000);
});

describe("what can never fit gets a precise, final error", () => {
  it("a group result over the value limit fails the next step with pipewright.LimitExceeded, once", async () => {
    const client = ts.client();
    // Four branches echo a 12 MB string: the list of results is 48 MB, over the 32 MiB limit.
    const p = makeBig
      .send(12 * MB)
      .continueWith(inParallel(Array.from({ length: 4 }, () => echo.partial())))
      .continueWith(len as never);
    const run = await client.submit(p);
    const err = (await run.result(60_000).catch((e) => e)) as RunFailedError;
    expect(err).toBeInstanceOf(RunFailedError);
    expect(err.error.type).toBe("pipewright.LimitExceeded");
    expect(err.error.message).toMatch(/the task's input is about \d+ bytes, over the limit of 33554432/);
    const view = await run.get(true);
    expect(view.steps.find((s) => s.task === "len")?.attempts).toBe(0); // never handed to a worker
  }, 90_000);
});

describe("outcomes can always be read", () => {
  it("WaitRuns and ListRuns over six 12 MB results (72 MB, past any message) answer within the limit; GetRun gives each", async () => {
    const client = ts.client();
    const runs = await Promise.all(Array.from({ length: 6 }, () => client.submit(makeBig.send(12 * MB), { name: "six-big" })));
    const ids = runs.map((r) => r.id);
    const { runs: waited, done } = await client.rpc.waitRuns({ runIds: ids, timeout: { seconds: 60n, nanos: 0 } });
    expect(done).toBe(true);
    const omitted = waited.filter((r) => r.outcomeOmitted);
    expect(omitted.length).toBeGreaterThan(0);
    expect(waited.filter((r) => r.outcome).length).toBeGreaterThan(0);
    for (const r of omitted) {
      const { run } = await client.rpc.getRun({ runId: r.id });
      expect((run!.outcome!.kind.value as { kind: { value: { data: Uint8Array } } }).kind.value.data.length).toBe(12 * MB + 2);
    }
    let pages = 0;
    const listed: string[] = [];
    for (let token = ""; pages === 0 || token; pages++) {
      const page = await client.rpc.listRuns({ name: "six-big", pageSize: 100, pageToken: token });
      listed.push(...page.runs.map((r) => r.id));
      token = page.nextPageToken;
    }
    expect(pages).toBeGreaterThan(1);
    expect(listed.sort()).toEqual([...ids].sort());
  }, 120_000);

  it("a worker (not our SDK) failing three branches with 12 MB errors: the server cuts them; WaitRun and GetRun (full) answer", async () => {
    const raw = new RawWorker(ts.address, ["raw_fail"], 3);
    const client = ts.client();
    const rawFail = taskRef<[], never>("raw_fail");
    const run = await client.submit(inParallel([rawFail.send(), rawFail.send(), rawFail.send()]));
    const got = await raw.waitForAssignments(3);
    const huge = "h".repeat(12 * MB);
    for (const a of got) raw.fail(a.key!, create(TaskErrorSchema, { type: "Huge", message: huge, stack: huge }));
    const { run: done } = await client.rpc.waitRun({ runId: run.id, timeout: { seconds: 60n, nanos: 0 } });
    expect(RunState[done!.state]).toBe("FAILED");
    const error = done!.outcome!.kind.value as { message: string; causes: { message: string; stack: string }[] };
    expect(error.causes).toHaveLength(3);
    for (const c of error.causes) {
      expect(c.message).toMatch(/^h+… \(\d+ more characters cut\)$/);
      expect(c.message.length + c.stack.length).toBeLessThan(40_000);
    }
    const full = await client.rpc.getRun({ runId: run.id, view: RunView.FULL });
    expect(full.run!.steps.filter((s) => s.error).length).toBe(4); // three branches and the group
    raw.drop();
  }, 90_000);

  it("three branches failing with 12 MB errors: WaitRun and GetRun (full) answer, errors cut with a marker", async () => {
    const client = ts.client();
    const run = await client.submit(inParallel(Array.from({ length: 3 }, () => failBig.send(12 * MB))));
    const { run: done } = await client.rpc.waitRun({ runId: run.id, timeout: { seconds: 60n, nanos: 0 } });
    expect(RunState[done!.state]).toBe("FAILED");
    const error = done!.outcome!.kind.value as { type: string; message: string; causes: { message: string }[] };
    expect(error.type).toBe("pipewright.AggregateError");
    expect(error.causes).toHaveLength(3);
    for (const c of error.causes) {
      expect(c.message.length).toBeLessThan(20_000);
      expect(c.message).toMatch(/more characters cut\)$/);
    }
    expect(error.message.length).toBeLessThan(20_000);
    const full = await client.rpc.getRun({ runId: run.id, view: RunView.FULL });
    expect(full.run!.steps.filter((s) => s.error).length).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it("a single 45 MB error: GetRun's full view answers", async () => {
    const client = ts.client();
    const run = await client.submit(failBig.send(45 * MB));
    const { run: done } = await client.rpc.waitRun({ runId: run.id, timeout: { seconds: 60n, nanos: 0 } });
    expect(RunState[done!.state]).toBe("FAILED");
    const full = await client.rpc.getRun({ runId: run.id, view: RunView.FULL });
    expect(full.run!.steps[0].error!.message.length).toBeLessThan(20_000);
  }, 90_000);
});
