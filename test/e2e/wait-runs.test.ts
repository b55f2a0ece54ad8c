// WaitRuns (the batch wait): one call holds until every run named has
// finished, or its timeout passes, and answers each run's state in order.

import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";
import { task } from "../../worker-sdk/task.js";

/** A task no worker here serves: its runs stay queued. */
const unserved = task("wait_runs_unserved", (x: string) => x);

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(() => ts?.stop());

describe("WaitRuns", () => {
  it("one call holds until every run has finished (no worker yet when it starts)", async () => {
    const client = ts.client();
    const handles = await client.submitMany([t.echo.send(1), t.echo.send(2), t.echo.send(3)]);
    const waiting = client.rpc.waitRuns({ runIds: handles.map((h) => h.id), timeout: durationFromMs(30_000) });
    await new Promise((r) => setTimeout(r, 200));
    const worker = await ts.worker({ tasks: t.testTasks });
    const response = await waiting;
    expect(response.done).toBe(true);
    expect(response.runs.map((r) => r.id)).toEqual(handles.map((h) => h.id));
    expect(response.runs.map((r) => r.state)).toEqual([RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.SUCCEEDED]);
    await worker.stop();
  });

  it("answers at its timeout, not before, with the runs' current states", async () => {
    const client = ts.client();
    const [h] = await client.submitMany([unserved.send("nobody runs this")]);
    const started = Date.now();
    const response = await client.rpc.waitRuns({ runIds: [h.id], timeout: durationFromMs(400) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(response.done).toBe(false);
    expect(response.runs[0].state).toBeLessThan(RunState.SUCCEEDED);
    await client.run(h.id).cancel();
  });

  it("names an unknown run: NOT_FOUND", async () => {
    await expect(ts.client().rpc.waitRuns({ runIds: ["00000000-0000-4000-8000-000000000000"], timeout: durationFromMs(100) })).rejects.toMatchObject({
      code: 5,
    });
  });
});
