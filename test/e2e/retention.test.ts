// Retention: finished runs older than --retention-hours go, with their events,
// payloads, inbox and queue rows, in batches, by any server process; recent
// finished runs and active runs (whatever their age) stay; two processes
// sweeping the same database at once delete each run once; retention 0 keeps
// everything. DeleteRun: OK, NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT.
// Against real PostgreSQL and real servers.

import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { DEFAULT_CONFIG } from "../../server/config.js";
import { RetentionSweeper } from "../../server/engine/retention.js";
import { startServer, type RunningServer } from "../../server/server.js";
import * as ex from "../../examples/tasks.js";
import { memoryLog, type MemoryLog } from "../support/memory-log.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
let log: MemoryLog;
/** Second process on the same database: retention 1 hour too. */
let other: RunningServer;
/** Third process on the same database: retention 0 (keep forever). */
let keeper: RunningServer;
let otherClient: PipewrightClient;

beforeAll(async () => {
  log = memoryLog("info");
  ts = await startTestServer({ heartbeatIntervalMs: 200, retentionHours: 1 }, log.logger);
  await ts.worker({ tasks: t.testTasks, slots: 8 });
  other = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: ts.db.url, heartbeatIntervalMs: 200, retentionHours: 1 });
  keeper = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: ts.db.url, heartbeatIntervalMs: 200, retentionHours: 0 });
  otherClient = new PipewrightClient(other.address);
});
afterAll(async () => {
  t.resetGates();
  otherClient?.close();
  await other?.stop();
  await keeper?.stop();
  await ts?.stop();
});
afterEach(() => t.resetGates());

const sql = () => ts.server.sql;

/** Moves a finished run's end back `hours` hours, as if it had finished then. */
async function finishedHoursAgo(uid: string, hours: number): Promise<void> {
  const rows = await sql()`update runs set finished_at = now() - ${hours}::float8 * interval '1 hour' where uid = ${uid}::uuid and state >= 4 returning 1`;
  expect(rows.length).toBe(1);
}

/** How many rows each table holds for the run (0 everywhere once it is deleted). */
async function rowsOf(uid: string): Promise<{ runs: number; events: number; blobs: number; inbox: number; queue: number }> {
  const [r] = await sql()<{ runs: number; events: number; blobs: number; inbox: number; queue: number }[]>`
    with r as (select id from runs where uid = ${uid}::uuid)
    select (select count(*) from r)::int as runs,
           (select count(*) from run_events where run_id in (select id from r))::int as events,
           (select count(*) from payload_blobs where run_id in (select id from r))::int as blobs,
           (select count(*) from run_inbox where run_id in (select id from r))::int as inbox,
           (select count(*) from task_queue where run_id in (select id from r))::int as queue`;
  return r;
}

/**
 * Rows a finished run may still have around it (a payload, an inbox entry, a held-back queue
 * row on a queue nobody serves). `inbox: false` for a run that is still active: its owner
 * applies inbox entries, and this one is a cancel.
 */
async function addLeftovers(uid: string, { inbox = true } = {}): Promise<void> {
  await sql()`insert into payload_blobs (run_id, hash, data) select id, ${Buffer.alloc(32, 7)}, ${Buffer.from("blob")} from runs where uid = ${uid}::uuid`;
  if (inbox) await sql()`insert into run_inbox (run_id, kind, body) select id, 3, ${Buffer.from("late cancel")} from runs where uid = ${uid}::uuid`;
  await sql()`insert into task_queue (run_id, step, task, queue, status, assignment)
              select id, 9999, 'retention_nobody', 'retention_nobody', 2, ${Buffer.from([0])} from runs where uid = ${uid}::uuid`;
}

/** A run that ends with events (two task results), finished. */
async function finishedRun(client: PipewrightClient = ts.client()): Promise<string> {
  const run = await client.submit(ex.multiply.send(3, 2).continueWith(ex.add, 1));
  expect(await run.result()).toBe(7);
  return run.id;
}

const statusOf = (err: unknown) => grpc.status[(err as grpc.ServiceError).code];
/** How a call ends: "OK", or the name of its gRPC status. */
const callStatus = (call: Promise<unknown>) => call.then(() => "OK", statusOf);

describe("the retention sweep", () => {
  it("deletes finished runs past the retention with every row of theirs; keeps recent finished runs and old active runs", async () => {
    const old = await Promise.all([finishedRun(), finishedRun(), finishedRun(otherClient)]);
    const recent = await Promise.all([finishedRun(), finishedRun(otherClient)]);
    const active = await ts.client().submit(t.gate.send("retention-active").continueWith(t.echo));
    await until("the active run's task started", () => t.journal.includes("start retention-active"));
    for (const uid of old) await finishedHoursAgo(uid, 2);
    for (const uid of recent) await finishedHoursAgo(uid, 0.5); // inside the hour
    // The active run is older than any retention (it cannot have a finished_at: not finished).
    await sql()`update runs set created_at = now() - interval '400 days' where uid = ${active.id}::uuid`;
    await addLeftovers(old[0]);
    await addLeftovers(active.id, { inbox: false });
    expect(await rowsOf(old[0])).toEqual({ runs: 1, events: 2, blobs: 1, inbox: 1, queue: 1 });
    const activeBefore = await rowsOf(active.id);
    const deletedBefore = ts.server.metrics.runsDeleted.value;

    expect(await ts.server.retention.sweep()).toBe(3);

    for (const uid of old) expect(await rowsOf(uid)).toEqual({ runs: 0, events: 0, blobs: 0, inbox: 0, queue: 0 });
    for (const uid of recent) expect((await rowsOf(uid)).runs + (await rowsOf(uid)).events).toBe(1 + 2);
    expect(await rowsOf(active.id)).toEqual(activeBefore);
    // Not answered from memory either (old[0] finished in this process, which cached it).
    for (const uid of old) expect(await callStatus(ts.client().run(uid).get())).toBe("NOT_FOUND");
    for (const uid of recent) expect((await ts.client().run(uid).get()).state).toBe(RunState.SUCCEEDED);
    // Counted and logged.
    expect(ts.server.metrics.runsDeleted.value - deletedBefore).toBe(3);
    expect(await ts.server.metrics.registry.getSingleMetricAsString("pipewright_runs_deleted_total")).toContain(
      `pipewright_runs_deleted_total ${ts.server.metrics.runsDeleted.value}`,
    );
    const line = log.lines().find((l) => l.runs_deleted === 3);
    expect(line).toMatchObject({ level: "info", component: "engine", retention_hours: 1 });
    // A second sweep finds nothing; the active run goes on and finishes.
    expect(await ts.server.retention.sweep()).toBe(0);
    t.openGate("retention-active");
    expect(await active.result()).toEqual(["retention-active"]);
    // Finished now, but just now: kept.
    expect(await ts.server.retention.sweep()).toBe(0);
    expect((await rowsOf(active.id)).runs).toBe(1);
  });

  it("two server processes sweeping the same database at once delete each run once, without errors", async () => {
    const n = 2600; // over five batches of 500
    await sql()`insert into runs (uid, name, state, spec, finished_at, outcome)
                select gen_random_uuid(), 'retention-bulk', 4, '\\x00'::bytea, now() - interval '3 hours' - i * interval '1 second', '\\x00'::bytea
                from generate_series(1, ${n}) as i`;
    await sql()`insert into run_events (run_id, seq, kind, at) select id, s, 3, now() from runs, generate_series(1, 2) as s where name = 'retention-bulk'`;
    const warnsBefore = log.lines().filter((l) => l.level !== "info").length;
    const [a, b] = await Promise.all([ts.server.retention.sweep(), other.retention.sweep()]);
    expect(a + b).toBe(n);
    const [left] = await sql()<{ runs: number; events: number }[]>`
      select (select count(*) from runs where name = 'retention-bulk')::int as runs,
             (select count(*) from run_events e where not exists (select 1 from runs r where r.id = e.run_id))::int as events`;
    expect(left).toEqual({ runs: 0, events: 0 });
    expect(log.lines().filter((l) => l.level !== "info").length).toBe(warnsBefore);
    expect(ts.server.metrics.runsDeleted.value + other.metrics.runsDeleted.value).toBeGreaterThanOrEqual(n);
  });

  it("never waits on a run someone else has locked (SKIP LOCKED): it takes the others and leaves that one for a later sweep", async () => {
    const [locked, free] = [await finishedRun(), await finishedRun()];
    await finishedHoursAgo(locked, 2);
    await finishedHoursAgo(free, 2);
    let release!: () => void;
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const tx = sql().begin(async (tx) => {
      await tx`select 1 from runs where uid = ${locked}::uuid for update`;
      holding();
      await new Promise<void>((r) => (release = r));
    });
    try {
      await held;
      const swept = await Promise.race([other.retention.sweep(), new Promise((r) => setTimeout(() => r("waited"), 5000))]);
      expect(swept).toBe(1);
      expect((await rowsOf(free)).runs).toBe(0);
      expect((await rowsOf(locked)).runs).toBe(1);
    } finally {
      release();
      await tx;
    }
    expect(await other.retention.sweep()).toBe(1);
    expect((await rowsOf(locked)).runs).toBe(0);
  });

  it("deletes in batches, yielding between them: a sweep with batches of 100 takes all 350 old runs", async () => {
    await sql()`insert into runs (uid, name, state, spec, finished_at) select gen_random_uuid(), 'retention-batches', 6, '\\x00'::bytea, now() - interval '2 hours' from generate_series(1, 350)`;
    const batches: number[] = [];
    const sweeper = new RetentionSweeper(sql(), { hours: 1, batchSize: 100, log: log.logger, forget: (uids) => batches.push(uids.length) });
    expect(await sweeper.sweep()).toBe(350);
    expect(batches).toEqual([100, 100, 100, 50]);
  });

  it("retention 0 deletes nothing, however old", async () => {
    const uid = await finishedRun();
    await finishedHoursAgo(uid, 24 * 3650);
    expect(keeper.retention.enabled).toBe(false);
    expect(await keeper.retention.sweep()).toBe(0);
    expect((await rowsOf(uid)).runs).toBe(1);
    // The 1-hour processes do delete it.
    expect(await other.retention.sweep()).toBe(1);
    expect((await rowsOf(uid)).runs).toBe(0);
  });

  it("runs on its own timer, and stops", async () => {
    const uid = await finishedRun();
    await finishedHoursAgo(uid, 2);
    const sweeper = new RetentionSweeper(sql(), { hours: 1, intervalMs: 50, log: log.logger });
    sweeper.start();
    try {
      await until("the timer's sweep deleted the run", async () => (await rowsOf(uid)).runs === 0, 5000);
    } finally {
      await sweeper.stop();
    }
    const later = await finishedRun();
    await finishedHoursAgo(later, 2);
    await new Promise((r) => setTimeout(r, 300));
    expect((await rowsOf(later)).runs).toBe(1); // stopped: no more sweeps
    await ts.server.retention.sweep();
  });
});

describe("DeleteRun", () => {
  it("deletes a finished run with its events (OK); then NOT_FOUND", async () => {
    const uid = await finishedRun();
    await addLeftovers(uid);
    const before = ts.server.metrics.runsDeleted.value;
    await ts.client().run(uid).delete();
    expect(await rowsOf(uid)).toEqual({ runs: 0, events: 0, blobs: 0, inbox: 0, queue: 0 });
    expect(await callStatus(ts.client().run(uid).get())).toBe("NOT_FOUND"); // not from the finished-run cache either
    expect(ts.server.metrics.runsDeleted.value - before).toBe(1);
    expect(await callStatus(ts.client().run(uid).delete())).toBe("NOT_FOUND");
    expect(await callStatus(ts.client().run(randomUUID()).delete())).toBe("NOT_FOUND");
  });

  it("works through a process that does not own the run; the owner then forgets it too (NOT_FOUND, not its cache)", async () => {
    const uid = await finishedRun();
    const owner = ts.client();
    expect((await owner.run(uid).get()).state).toBe(RunState.SUCCEEDED); // answered from the owner's memory of finished runs
    await otherClient.run(uid).delete();
    expect((await rowsOf(uid)).runs).toBe(0);
    await until("the owner forgot the deleted run", async () => (await callStatus(owner.run(uid).get())) === "NOT_FOUND", 5000);
  });

  it("refuses an active run with FAILED_PRECONDITION (cancel it first), on the owner and elsewhere; the run goes on", async () => {
    const run = await ts.client().submit(t.gate.send("delete-active"));
    await until("started", () => t.journal.includes("start delete-active"));
    for (const client of [ts.client(), otherClient]) {
      const err = await client
        .run(run.id)
        .delete()
        .catch((e) => e);
      expect(statusOf(err)).toBe("FAILED_PRECONDITION");
      expect(err.details).toMatch(/cancel it first/);
    }
    expect((await rowsOf(run.id)).runs).toBe(1);
    await run.cancel("to delete it");
    expect((await run.wait()).state).toBe(RunState.CANCELLED);
    await until("let go by its owner", async () => (await callStatus(ts.client().run(run.id).delete())) === "OK");
    expect((await rowsOf(run.id)).runs).toBe(0);
  });

  it("rejects a run id that is not a UUID with INVALID_ARGUMENT naming run_id", async () => {
    const err = await ts
      .client()
      .rpc.deleteRun({ runId: "not-a-uuid" })
      .catch((e) => e);
    expect(statusOf(err)).toBe("INVALID_ARGUMENT");
    expect(err.details).toMatch(/run_id/);
  });
});
