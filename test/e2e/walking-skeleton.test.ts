// The walking skeleton, end to end for real: a client submits a pipeline, a
// worker runs it over the bidirectional stream, PostgreSQL keeps it.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import * as t from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let ts: TestServer;

beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: t.allTasks, slots: 4 });
});
afterAll(() => ts?.stop());

describe("one pipeline end to end", () => {
  it("multiply(3, 2) then divide by 2 gives 3", async () => {
    const client = ts.client();
    const run = await client.submit(t.multiply.send(3, 2).continueWith(t.divide, 2));
    expect(await run.result()).toBe(3);
    const view = await run.get(true);
    expect(view.state).toBe(RunState.SUCCEEDED);
    expect(view.steps.map((s) => [s.path, s.task, s.attempts])).toEqual([
      ["steps[0]", "multiply", 1],
      ["steps[1]", "divide", 1],
    ]);
  });

  it("finds the run in the database after a server restart between submit and read", async () => {
    const client = ts.client();
    const run = await client.submit(t.multiply.send(7, 6), { name: "restart-check" });
    expect(await run.result()).toBe(42);
    await ts.stopServer();
    await ts.restartServer();
    const again = await client.run(run.id).get(true);
    expect(again.state).toBe(RunState.SUCCEEDED);
    expect(again.name).toBe("restart-check");
    expect(again.steps[0].task).toBe("multiply");
    expect(await client.run<number>(run.id).result()).toBe(42);
  });
});

describe("runs survive a restart", () => {
  it("a run submitted before a restart, with no worker for its task yet, completes after it", async () => {
    const client = ts.client();
    const lonely = t.multiply.withOptions({ queue: "later" });
    const run = await client.submit(lonely.send(5, 5).continueWith(t.divide, 5));
    const before = await run.get(true);
    expect(before.state).toBe(RunState.RUNNING);
    expect(before.steps[0].state).toBeGreaterThan(0);
    await ts.stopServer();
    await ts.restartServer();
    const after = await client.run(run.id).get(true);
    expect(after.state).toBe(RunState.RUNNING);
    expect(after.steps.map((s) => s.path)).toEqual(["steps[0]", "steps[1]"]);
    // A worker serving the "later" queue arrives: the run picks up where it was.
    await ts.worker({ tasks: t.allTasks, queues: ["later", "default"], slots: 2 });
    expect(await client.run<number>(run.id).result()).toBe(5);
  });

  it("the same request_id returns the same run; with another pipeline it is ALREADY_EXISTS", async () => {
    const client = ts.client();
    const a = await client.submit(t.multiply.send(2, 2), { requestId: "same-key" });
    const b = await client.submit(t.multiply.send(2, 2), { requestId: "same-key" });
    expect(b.id).toBe(a.id);
    const err = await client.submit(t.multiply.send(2, 3), { requestId: "same-key" }).catch((e) => e);
    expect(grpc.status[err.code]).toBe("ALREADY_EXISTS");
    expect(await a.result()).toBe(4);
  });
});
