// No run is left stuck: deep cascades of child pipelines finish, a run whose
// machine breaks while applying an event ends FAILED at once (it is not kept
// half-applied in memory), and a stored run that cannot be rebuilt from its
// log ends FAILED when a server takes it over.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as grpc from "@grpc/grpc-js";
import type { Pipeline } from "../../client/pipeline-builder.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { RunMachine } from "../../server/core/run-machine.js";
import { task, type TaskDefinition } from "../../worker-sdk/task.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { nap } from "../support/test-tasks.js";
import { until } from "../support/until.js";

/** Returns a child pipeline of itself until n reaches 0: the last step of every level is the task that returned the level below. */
const nest: TaskDefinition<[n: number], number> = task("nest", (n: number): number | Pipeline<number> => (n <= 0 ? 7 : nest.send(n - 1)));
const executions = { count: 0 };
const counted = task("counted", () => ++executions.count);

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ maxDepth: 10_000 });
  await ts.worker({ tasks: [nest, nap, counted], slots: 4 });
});
afterAll(() => ts?.stop());

describe("runs that used to get stuck", () => {
  it("a cascade of 2,000 nested child pipelines finishing at once ends the run with the innermost result", async () => {
    const run = await ts.client().submit(nest.send(2_000));
    expect(await run.result(120_000)).toBe(7);
  }, 180_000);

  it("a machine that throws while applying a result ends its run FAILED with a reference, drops its queue rows and is not run again", async () => {
    const original = RunMachine.prototype.apply;
    const spy = vi.spyOn(RunMachine.prototype, "apply").mockImplementation(function (this: RunMachine, input) {
      if (input.type === "taskFinished") {
        // Break half-way: the machine's state is changed, then it throws.
        this.status = "paused";
        throw new Error("injected failure while applying");
      }
      return original.call(this, input);
    });
    try {
      executions.count = 0;
      const run = await ts.client().submit(counted.send().continueWith(nap));
      const { run: final } = await ts.client().rpc.waitRun({ runId: run.id, timeout: { seconds: 30n, nanos: 0 } });
      expect(RunState[final!.state]).toBe("FAILED");
      expect(final!.outcome?.kind.case).toBe("error");
      const error = final!.outcome!.kind.value as { type: string; message: string };
      expect(error.type).toBe("pipewright.Internal");
      expect(error.message).toMatch(/\(ref [0-9a-f]{8}\)/);
      expect(ts.server.engine.stats().activeRuns).toBe(0);
      const [{ n }] = await ts.server.sql<
        { n: number }[]
      >`select count(*)::int as n from task_queue q join runs r on r.id = q.run_id where r.uid = ${run.id}::uuid`;
      expect(n).toBe(0);
      // Nothing is retried behind the client's back, and control says it is over.
      await new Promise((r) => setTimeout(r, 300));
      expect(executions.count).toBe(1);
      const cancel = await ts
        .client()
        .rpc.cancelRun({ runId: run.id })
        .catch((e: grpc.ServiceError) => e);
      expect((cancel as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
      // Its history still ends with the run's end.
      const events = [];
      for await (const { event } of ts.client().rpc.watchRun({ runId: run.id })) events.push(event!);
      expect(events.at(-1)?.kind.case).toBe("run");
      expect(RunState[(events.at(-1)!.kind.value as { state: RunState }).state]).toBe("FAILED");
    } finally {
      spy.mockRestore();
    }
    // The server is fine for everybody else.
    expect(await ts.client().submitAndWait(nest.send(3))).toBe(7);
  });

  it("an active run whose stored log cannot be replayed ends FAILED when a server takes it over, and waits on it return", async () => {
    const uid = randomUUID();
    // A spec that is not a pipeline (a bare varint field 1 of wire type 0 where steps are messages, cut short).
    await ts.server.sql`
      insert into runs (uid, name, state, spec, created_at, task_count, owner_id)
      values (${uid}::uuid, 'damaged', 1, ${Buffer.from([0x0a, 0xff, 0xff])}, now(), 1, null)`;
    const adopted = await ts.server.engine.adoptOrphans();
    expect(adopted).toBeGreaterThanOrEqual(1);
    const { run, done } = await ts.client().rpc.waitRun({ runId: uid, timeout: { seconds: 5n, nanos: 0 } });
    expect(done).toBe(true);
    expect(RunState[run!.state]).toBe("FAILED");
    expect((run!.outcome!.kind.value as { type: string }).type).toBe("pipewright.Internal");
    await until("nothing left to adopt", async () => (await ts.server.engine.adoptOrphans()) === 0);
    // GetRun's full view answers (without steps) rather than failing.
    const full = await ts.client().rpc.getRun({ runId: uid, view: 2 });
    expect(RunState[full.run!.state]).toBe("FAILED");
  });
});
