// Delayed start (issue 16, item 1): a run submitted with a start time or a
// delay has none of its tasks dispatched before then, says when it starts,
// can be cancelled before it starts, counts its run timeout from its start,
// and keeps its start through a server process killed with SIGKILL.

import * as grpc from "@grpc/grpc-js";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState, RunView, StepState } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { task } from "../../worker-sdk/task.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort, resilient } from "../support/fault-harness.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/** When each key's task ran (ms since the epoch), in this process. */
const ranAt = new Map<string, number>();
const stamp = task("stamp", (key: string) => {
  ranAt.set(key, Date.now());
  return key;
});

let ts: TestServer;
let client: PipewrightClient;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [stamp], slots: 4 });
  client = ts.client();
});
afterAll(() => ts?.stop());

describe("delayed start", () => {
  it("dispatches nothing before the start: the run says when it starts, its step waits unstarted, then it runs", async () => {
    const run = await client.submit(stamp.send("delayed").continueWith(stamp), { startDelayMs: 1200 });
    const submitted = Date.now();
    const seen = (await client.rpc.getRun({ runId: run.id, view: RunView.FULL })).run!;
    expect(seen.state).toBe(RunState.RUNNING);
    const startsAt = timestampMs(seen.startTime!);
    expect(startsAt - timestampMs(seen.createTime!)).toBeGreaterThanOrEqual(1190);
    expect(seen.steps.map((s) => [StepState[s.state], s.attempts])).toEqual([
      ["QUEUED", 0],
      ["PENDING", 0],
    ]);
    await new Promise((r) => setTimeout(r, 600));
    expect(ranAt.has("delayed")).toBe(false); // a free worker, and still nothing
    expect(await run.result(10_000)).toBe("delayed");
    expect(ranAt.get("delayed")!).toBeGreaterThanOrEqual(startsAt);
    expect(ranAt.get("delayed")! - submitted).toBeLessThan(1200 + 3000); // and not long after (the dispatcher looks when it is due)
  });

  it("is listed and counted as scheduled until it starts, and no longer after", async () => {
    const ns = new PipewrightClient(ts.address, { namespace: "scheduling" });
    await ts.worker({ namespace: "scheduling", tasks: [stamp] });
    try {
      const later = await ns.submit(stamp.send("listed-later"), { startDelayMs: 60_000, name: "later" });
      const now = await ns.submit(stamp.send("listed-now"), { name: "now" });
      await now.result();
      const scheduled = await ns.rpc.listRuns({ scheduled: true });
      expect(scheduled.runs.map((r) => r.id)).toEqual([later.id]);
      expect((await ns.rpc.listRuns({})).runs.map((r) => r.id).sort()).toEqual([later.id, now.id].sort());
      const counts = await ns.rpc.countRuns({});
      expect([counts.scheduled, counts.scheduledCapped]).toEqual([1n, false]);
      // Cancelled, it is no longer scheduled, though its start time is still ahead.
      await later.cancel();
      await later.wait();
      expect((await ns.rpc.listRuns({ scheduled: true })).runs).toEqual([]);
      expect((await ns.rpc.countRuns({})).scheduled).toBe(0n);
    } finally {
      ns.close();
    }
  });

  it("a start time already past starts the run at once, and it has no start time of its own", async () => {
    const run = await client.submit(stamp.send("past"), { startAt: new Date(Date.now() - 60_000) });
    expect(await run.result(5000)).toBe("past");
    expect((await run.get()).startTime).toBeUndefined();
  });

  it("a run cancelled before its start ends CANCELLED and its task never runs", async () => {
    const run = await client.submit(stamp.send("never"), { startDelayMs: 700 });
    await run.cancel("changed my mind");
    expect((await run.wait(5000)).state).toBe(RunState.CANCELLED);
    await new Promise((r) => setTimeout(r, 1200));
    expect(ranAt.has("never")).toBe(false);
  });

  it("the run timeout counts from the start, not from the submission", async () => {
    const run = await client.submit(stamp.send("timed"), { startDelayMs: 800, runTimeoutMs: 600 });
    expect(await run.result(10_000)).toBe("timed"); // counted from submission it would have failed before starting
  });

  it("refuses both a start time and a delay, a negative delay, and a start over 366 days ahead, naming the field", async () => {
    const refused = async (fields: Record<string, unknown>) => {
      const err = await client.rpc
        .submitRun({ requestId: `bad-${Math.random()}`, pipeline: stamp.send("x").toProto(), ...fields })
        .catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
      return (err as grpc.ServiceError).details;
    };
    expect(await refused({ startTime: timestampFromDate(new Date()), startDelay: { seconds: 1n, nanos: 0 } })).toMatch(
      /start_time: set start_time or start_delay, not both/,
    );
    expect(await refused({ startDelay: { seconds: -1n, nanos: 0 } })).toMatch(/start_delay: must be a non-negative duration/);
    expect(await refused({ startDelay: { seconds: BigInt(367 * 86400), nanos: 0 } })).toMatch(/start_delay: must be at most 366 days/);
    expect(await refused({ startTime: timestampFromDate(new Date(Date.now() + 367 * 86400_000)) })).toMatch(/start_time: must be at most 366 days ahead/);
  });
});

describe("delayed start through a server process killed with SIGKILL", () => {
  let db: TestDatabase;
  let server: ServerProcess | undefined;
  afterAll(async () => {
    if (server && server.child.exitCode === null) server.child.kill("SIGKILL");
    await db?.drop();
  });

  it("the run keeps its start: not dispatched early by the restarted server, and run once at its time", async () => {
    db = await createTestDatabase();
    const port = await freePort();
    server = await spawnServer(["--address", `127.0.0.1:${port}`], { DATABASE_URL: db.url });
    const c = new PipewrightClient(server.address);
    const w = new Worker({ address: server.address, tasks: [stamp], log: () => {}, reconnectDelayMs: { initial: 50, max: 300 } });
    try {
      await w.start();
      const run = await c.submit(stamp.send("survivor"), { startDelayMs: 3000 });
      const startsAt = timestampMs((await run.get()).startTime!);
      server.child.kill("SIGKILL");
      await server.exited;
      server = await spawnServer(["--address", `127.0.0.1:${port}`], { DATABASE_URL: db.url });
      const after = new PipewrightClient(server.address);
      try {
        // The channel to this address may still be backing off from the kill: retried while UNAVAILABLE.
        expect(await resilient("the run's result", () => after.rpc.waitRun({ runId: run.id, timeout: { seconds: 20n, nanos: 0 } }), 20_000)).toMatchObject({
          done: true,
          run: { state: RunState.SUCCEEDED },
        });
      } finally {
        after.close();
      }
      expect(ranAt.get("survivor")!).toBeGreaterThanOrEqual(startsAt);
    } finally {
      c.close();
      await Promise.race([w.stop(), new Promise((r) => setTimeout(r, 2000))]);
    }
  });
});
