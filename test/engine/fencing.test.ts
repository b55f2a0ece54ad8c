// Fencing: a result is applied only for the attempt the run is waiting for.
// A stale one fails the batch's in-statement check, the engine redoes the
// batch the careful way (fence first), drops the stale result and counts it.

import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskResultSchema } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { RunState, StepState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { encodeValue } from "../../proto/runtime/values.js";
import { claim } from "../../server/store/task-queue.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(() => ts?.stop());

describe("fencing", () => {
  it("drops a result for a stale attempt, applies the current one, and the run goes on", async () => {
    const client = ts.client();
    const handle = await client.submit(ex.multiply.send(3, 4).continueWith(ex.add, 1));
    const { engine, sql, processId } = ts.server;
    const [{ id: runId }] = await sql<{ id: number }[]>`select id from runs where uid = ${handle.id}::uuid`;
    // No worker is connected: claim the first step by hand, twice (a worker lost, then another).
    const first = await claim(sql, { processId, workerId: "w1", tasks: ["multiply"], queue: "", limit: 1, leaseMs: 60_000 });
    expect(first).toHaveLength(1);
    await sql`update task_queue set status = 0, worker_id = null, lease_until = null where run_id = ${runId}`;
    const second = await claim(sql, { processId, workerId: "w2", tasks: ["multiply"], queue: "", limit: 1, leaseMs: 60_000 });
    expect(second[0].attempt).toBe(first[0].attempt + 1);

    const result = (attempt: number, value: number) => ({
      runId,
      step: first[0].step,
      attempt,
      receivedAt: Date.now(),
      result: create(TaskResultSchema, { outcome: { case: "value", value: encodeValue(value) } }),
    });
    const staleBefore = engine.stats().staleResults;
    engine.results([result(first[0].attempt, 999)]); // the lost worker answers late
    await engine.idle();
    expect(engine.stats().staleResults).toBe(staleBefore + 1);
    expect((await handle.get(true)).steps[0].state).not.toBe(StepState.SUCCEEDED);

    engine.results([result(second[0].attempt, 12), result(second[0].attempt, 12)]); // the current one, delivered twice
    await engine.idle();
    expect(engine.stats().staleResults).toBe(staleBefore + 2);
    const view = await handle.get(true);
    expect(view.steps[0].attempts).toBe(1);
    expect(view.steps[1].task).toBe("add");

    // A worker picks up the second step and the run finishes with 12 + 1.
    await ts.worker({ tasks: ex.allTasks, slots: 1 });
    expect(await handle.result()).toBe(13);
    expect((await handle.get()).state).toBe(RunState.SUCCEEDED);
  });
});
