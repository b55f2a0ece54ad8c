// CountRuns and ResubmitRun (issue 15, the dashboard's summary and "run it
// again"), against a real server and worker: counts per state of the caller's
// namespace, capped; a resubmitted run is a new run of the same pipeline,
// name and run timeout, idempotent by request id, and only from the caller's
// namespace.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: t.testTasks, slots: 8 }); // the example tasks are among them
});
afterAll(async () => {
  t.resetGates();
  await ts?.stop();
});

/** The counts by state name. */
async function counts(client: PipewrightClient): Promise<Record<string, { count: number; capped: boolean }>> {
  const res = await client.rpc.countRuns({});
  expect(res.limit).toBe(10_000n);
  return Object.fromEntries(res.counts.map((c) => [RunState[c.state], { count: Number(c.count), capped: c.capped }]));
}

describe("CountRuns", () => {
  it("counts the caller's namespace's runs per state; another namespace counts its own", async () => {
    const client = ts.client();
    await Promise.all([1, 2, 3].map((i) => client.submitAndWait(ex.multiply.send(i, 2))));
    const failed = await client.submit(t.failWith.send("Boom", "on purpose", true));
    await failed.wait();
    const running = await client.submit(t.gate.send("count-running"));
    const c = await counts(client);
    expect(Object.keys(c)).toEqual(["RUNNING", "PAUSED", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"]);
    expect(c.SUCCEEDED).toEqual({ count: 3, capped: false });
    expect(c.FAILED).toEqual({ count: 1, capped: false });
    expect(c.RUNNING).toEqual({ count: 1, capped: false });
    const other = new PipewrightClient(ts.address, { namespace: "elsewhere" });
    try {
      expect(Object.values(await counts(other)).every((x) => x.count === 0)).toBe(true);
    } finally {
      other.close();
    }
    t.openGate("count-running");
    await running.wait();
  });

  it("stops each count at 10,000 and says so (capped)", async () => {
    const sql = ts.server.sql;
    // 10,050 finished runs of another namespace, written directly: the count must stop at the cap.
    await sql`
      insert into runs (uid, namespace, name, state, spec, created_at, finished_at, task_count)
      select gen_random_uuid(), 'crowded', 'bulk', 4, '\\x'::bytea, now(), now(), 1 from generate_series(1, 10050)`;
    const crowded = new PipewrightClient(ts.address, { namespace: "crowded" });
    try {
      expect((await counts(crowded)).SUCCEEDED).toEqual({ count: 10_000, capped: true });
    } finally {
      crowded.close();
    }
  });
});

describe("ResubmitRun", () => {
  it("starts a new run with the same pipeline, name and run timeout; idempotent by request id", async () => {
    const client = ts.client();
    const first = await client.submit(ex.multiply.send(6, 7), { name: "again", runTimeoutMs: 60_000 });
    expect(await first.result()).toBe(42);
    const { run: second } = await client.rpc.resubmitRun({ runId: first.id, requestId: "again-1" });
    expect(second!.id).not.toBe(first.id);
    expect(second!.name).toBe("again");
    expect(await client.run(second!.id).result()).toBe(42);
    // The run timeout came along: the new run's deadline is 60 s after its creation.
    const deadline = await ts.server.sql<
      { d: number }[]
    >`select extract(epoch from deadline - created_at)::float8 as d from runs where uid = ${second!.id}::uuid`;
    expect(deadline[0].d).toBeCloseTo(60, 0);
    const repeat = await client.rpc.resubmitRun({ runId: first.id, requestId: "again-1" });
    expect(repeat.existing).toBe(true);
    expect(repeat.run!.id).toBe(second!.id);
  });

  it("is NOT_FOUND for another namespace's run, and INVALID_ARGUMENT for a malformed id", async () => {
    const run = await ts.client().submit(ex.multiply.send(1, 1));
    await run.result();
    const other = new PipewrightClient(ts.address, { namespace: "elsewhere" });
    try {
      const err = await other.rpc.resubmitRun({ runId: run.id }).catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
      const bad = await other.rpc.resubmitRun({ runId: "nope" }).catch((e: grpc.ServiceError) => e);
      expect((bad as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      other.close();
    }
  });
});
