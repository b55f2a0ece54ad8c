// writeBatch (server/store/batch-write.ts) against the real test PostgreSQL: each part of a
// BatchWrite does its write, and a failed check (a stale attempt, a run owned elsewhere, an
// inbox entry applied twice, a taken request_id) aborts the one statement with nothing written.
// Inputs are built with the engine's own types; prerequisite rows are written with the store's
// own functions (writeBatch for runs, insertQueueRows, claim, sendControl, adoptOrphanRuns).

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "@pipewright/protocol";
import { BATCH_CHECK_FAILED, OWNERSHIP_LOST, writeBatch, type BatchQueueRow, type BatchWrite } from "../../server/store/batch-write.js";
import { CHANNELS } from "../../server/store/channels.js";
import { connect, type Sql } from "../../server/store/database.js";
import { readInbox, sendControl } from "../../server/store/inbox.js";
import { registerProcess } from "../../server/store/process-registry.js";
import { EventKind, type StoredEvent } from "../../server/store/run-events.js";
import { adoptOrphanRuns, type NewRunRow } from "../../server/store/run-store.js";
import { QueueStatus, claim, insertQueueRows, type QueueRow } from "../../server/store/task-queue.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { until } from "../support/until.js";

let db: TestDatabase;
let sql: Sql;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = connect(db.url, { max: 4 });
  // Alive, so that a takeover (adoptOrphanRuns) never takes this process's runs.
  await registerProcess(sql, me, "batch-write-test");
});
afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await db?.drop();
});

/** This process, the writer of every batch unless a test says otherwise. */
const me = randomUUID();
const bytes = (...b: number[]) => new Uint8Array(b);

/** A batch that writes nothing; tests fill in the parts they exercise. */
function batch(parts: Partial<BatchWrite> = {}): BatchWrite {
  return {
    owner: me,
    owned: [],
    newRuns: [],
    completions: [],
    retries: [],
    removals: [],
    rows: [],
    holds: [],
    events: [],
    runUpdates: [],
    foreign: [],
    inboxDone: [],
    notifyReady: false,
    finishedUids: [],
    ...parts,
  };
}

function newRun(parts: Partial<NewRunRow> = {}): NewRunRow {
  return {
    uid: randomUUID(),
    namespace: "default",
    startAt: null,
    requestId: null,
    requestHash: null,
    name: "batch-write-test",
    spec: bytes(10, 1, 2),
    deadline: null,
    taskCount: 1,
    createdAt: new Date(),
    state: RunState.RUNNING,
    finishedAt: null,
    outcome: null,
    finalState: null,
    ...parts,
  };
}

function queueRow(runId: number, step: number, parts: Partial<QueueRow> = {}): QueueRow {
  return { runId, step, task: "task-a", queue: "q-batch", availableAt: new Date(), assignment: bytes(8, step), held: false, attempt: 0, ...parts };
}

/** Creates running runs owned by `owner` (through writeBatch, the store's only way to insert runs); returns their ids. */
async function createRuns(count: number, owner = me): Promise<number[]> {
  const runs = Array.from({ length: count }, () => newRun());
  const { runIds } = await writeBatch(sql, batch({ owner, newRuns: runs }));
  return runs.map((r) => runIds.get(r.uid)!);
}

/** A run with one queue row per step, each claimed by worker `workerId` of `processId` (attempt 1). */
async function runWithClaimedSteps(steps: number, workerId = `w-${randomUUID()}`, processId = me, owner = me): Promise<{ runId: number; workerId: string }> {
  const [runId] = await createRuns(1, owner);
  const task = `task-${randomUUID()}`;
  await insertQueueRows(
    sql,
    Array.from({ length: steps }, (_, step) => queueRow(runId, step, { task })),
  );
  const claimed = await claim(sql, { processId, workerId, tasks: [task], queue: "q-batch", limit: steps, leaseMs: 30_000 });
  expect(claimed.map((c) => [c.step, c.attempt])).toEqual(Array.from({ length: steps }, (_, step) => [step, 1]));
  return { runId, workerId };
}

interface QueueRowInDb {
  step: number;
  attempt: number;
  status: number;
  worker_id: string | null;
  process_id: string | null;
  available_at: Date;
  lease_until: Date | null;
  wait_deadline: Date | null;
  assignment: Uint8Array;
  lost_count: number;
}

async function queueOf(runId: number): Promise<QueueRowInDb[]> {
  return sql<QueueRowInDb[]>`
    select step, attempt, status, worker_id, process_id::text, available_at, lease_until, wait_deadline, assignment, lost_count
    from task_queue where run_id = ${runId} order by step`;
}

async function eventsOf(runId: number): Promise<{ seq: number; kind: number; step: number | null; body: Uint8Array | null; at: Date }[]> {
  return sql`select seq, kind, step, body, at from run_events where run_id = ${runId} order by seq`;
}

async function counts(): Promise<Record<string, number>> {
  const [row] = await sql<Record<string, number>[]>`
    select (select count(*)::int from runs) as runs, (select count(*)::int from run_events) as events,
           (select count(*)::int from task_queue) as queue, (select count(*)::int from run_inbox) as inbox`;
  return row;
}

/** The rows a failed statement must leave as they were. */
async function snapshot(): Promise<unknown> {
  return {
    counts: await counts(),
    queue: await sql`select * from task_queue order by run_id, step`,
    runs: await sql`select id, state, owner_id, task_count, finished_at from runs order by id`,
  };
}

/** Collects NOTIFY payloads on `channel`; `received()` returns them once a later sentinel arrived. */
async function listen(channel: string) {
  const payloads: string[] = [];
  const { unlisten } = await sql.listen(channel, (payload) => payloads.push(payload));
  const prefix = `sentinel-${randomUUID()}`;
  let sentinels = 0;
  return {
    /** Everything notified before now: notifications arrive in commit order, so once a new sentinel is in, so is all before it. */
    async received(): Promise<string[]> {
      const sentinel = `${prefix}-${++sentinels}`;
      await sql`select pg_notify(${channel}, ${sentinel})`;
      await until(`the sentinel on ${channel}`, () => payloads.includes(sentinel));
      return payloads.filter((p) => !p.startsWith(prefix));
    },
    unlisten,
  };
}

describe("writeBatch", () => {
  it("writes nothing and asks nothing of the database for an empty batch", async () => {
    const before = await counts();
    expect(await writeBatch(sql, batch())).toEqual({ runIds: new Map(), cancelled: [] });
    expect(await counts()).toEqual(before);
  });

  it("inserts new runs, owned by the writer, and returns their ids by uid with the queue rows of their first steps", async () => {
    const finished = newRun({
      requestId: `req-${randomUUID()}`,
      requestHash: bytes(1, 2, 3),
      name: "already-done",
      state: RunState.SUCCEEDED,
      finishedAt: new Date("2026-01-02T03:04:05.678Z"),
      outcome: bytes(7, 7),
      finalState: bytes(9),
      deadline: new Date("2030-01-01T00:00:00.000Z"),
      taskCount: 0,
    });
    const running = newRun({ taskCount: 2 });
    const worker = { processId: me, workerId: "w-fast-path", leaseMs: 60_000 };
    const rows: BatchQueueRow[] = [
      { ...queueRow(0, 0), runUid: running.uid },
      { ...queueRow(0, 1, { claimedBy: worker, waitDeadline: new Date("2030-01-01T00:00:00.000Z") }), runUid: running.uid },
    ];

    const { runIds, cancelled } = await writeBatch(sql, batch({ newRuns: [finished, running], rows }));

    expect([...runIds.keys()].sort()).toEqual([finished.uid, running.uid].sort());
    expect(cancelled).toEqual([]);
    const stored =
      await sql`select id, uid::text, request_id, request_hash, name, state, spec, deadline, finished_at, outcome, final_state, task_count, owner_id::text
                            from runs where id = any(${[...runIds.values()]}::bigint[]) order by id`;
    expect(stored).toEqual(
      [
        {
          id: runIds.get(finished.uid),
          uid: finished.uid,
          request_id: finished.requestId,
          request_hash: Buffer.from([1, 2, 3]),
          name: "already-done",
          state: RunState.SUCCEEDED,
          spec: Buffer.from(finished.spec),
          deadline: finished.deadline,
          finished_at: finished.finishedAt,
          outcome: Buffer.from([7, 7]),
          final_state: Buffer.from([9]),
          task_count: 0,
          owner_id: me,
        },
        {
          id: runIds.get(running.uid),
          uid: running.uid,
          request_id: null,
          request_hash: null,
          name: "batch-write-test",
          state: RunState.RUNNING,
          spec: Buffer.from(running.spec),
          deadline: null,
          finished_at: null,
          outcome: null,
          final_state: null,
          task_count: 2,
          owner_id: me,
        },
      ].sort((a, b) => a.id! - b.id!),
    );

    const queue = await queueOf(runIds.get(running.uid)!);
    expect(
      queue.map(({ step, attempt, status, worker_id, process_id, wait_deadline }) => ({ step, attempt, status, worker_id, process_id, wait_deadline })),
    ).toEqual([
      { step: 0, attempt: 0, status: QueueStatus.ready, worker_id: null, process_id: null, wait_deadline: null },
      // Written already claimed (the in-process fast path): the claim bumps the attempt, as claim() does.
      { step: 1, attempt: 1, status: QueueStatus.running, worker_id: "w-fast-path", process_id: me, wait_deadline: new Date("2030-01-01T00:00:00.000Z") },
    ]);
    expect(queue[1].lease_until!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(Buffer.from(queue[1].assignment)).toEqual(Buffer.from([8, 1]));
  });

  it("fails with BATCH_CHECK_FAILED and writes nothing when a request_id was taken meanwhile", async () => {
    const requestId = `req-${randomUUID()}`;
    await writeBatch(sql, batch({ newRuns: [newRun({ requestId })] }));
    const [existing] = await createRuns(1);
    const before = await snapshot();

    const other = newRun();
    const write = writeBatch(
      sql,
      batch({
        newRuns: [other, newRun({ requestId })],
        rows: [{ ...queueRow(0, 0), runUid: other.uid }],
        events: [{ runId: existing, seq: 1, kind: EventKind.pause, at: new Date(), step: null, body: null }],
      }),
    );
    await expect(write).rejects.toMatchObject({ code: BATCH_CHECK_FAILED, message: expect.stringContaining("request_id") });
    expect(await snapshot()).toEqual(before);
  });

  it("inserts events and updates the runs they change", async () => {
    const [runId] = await createRuns(1);
    const at = new Date("2026-03-04T05:06:07.891Z");
    const events: StoredEvent[] = [
      { runId, seq: 1, kind: EventKind.taskFinished, at, step: 0, body: bytes(42, 43) },
      { runId, seq: 2, kind: EventKind.cancel, at, step: null, body: new TextEncoder().encode("enough") },
      { runId, seq: 3, kind: EventKind.timeout, at, step: null, body: null },
    ];
    const finishedAt = new Date("2026-03-04T05:06:08.000Z");

    await writeBatch(
      sql,
      batch({
        owned: [runId],
        events,
        runUpdates: [{ id: runId, state: RunState.CANCELLED, taskCount: 3, finishedAt, outcome: bytes(5), finalState: bytes(6) }],
      }),
    );

    expect(await eventsOf(runId)).toEqual([
      { seq: 1, kind: EventKind.taskFinished, step: 0, body: Buffer.from([42, 43]), at },
      { seq: 2, kind: EventKind.cancel, step: null, body: Buffer.from("enough"), at },
      { seq: 3, kind: EventKind.timeout, step: null, body: null, at },
    ]);
    const [run] = await sql`select state, task_count, finished_at, outcome, final_state from runs where id = ${runId}`;
    expect(run).toEqual({ state: RunState.CANCELLED, task_count: 3, finished_at: finishedAt, outcome: Buffer.from([5]), final_state: Buffer.from([6]) });
  });

  it("removes the queue rows of completed current attempts", async () => {
    const { runId } = await runWithClaimedSteps(3);
    await writeBatch(
      sql,
      batch({
        owned: [runId],
        completions: [
          { runId, step: 0, attempt: 1 },
          { runId, step: 2, attempt: 1 },
        ],
        events: [{ runId, seq: 1, kind: EventKind.taskFinished, at: new Date(), step: 0, body: bytes(1) }],
      }),
    );
    expect((await queueOf(runId)).map((r) => r.step)).toEqual([1]);
    expect(await eventsOf(runId)).toHaveLength(1);
  });

  it("fails with BATCH_CHECK_FAILED and writes nothing when a completion is for a stale attempt", async () => {
    const { runId } = await runWithClaimedSteps(2);
    const [otherRun] = await createRuns(1);
    const before = await snapshot();

    const write = writeBatch(
      sql,
      batch({
        owned: [runId, otherRun],
        // step 0's attempt 1 is current; step 1's attempt 0 was superseded by the claim.
        completions: [
          { runId, step: 0, attempt: 1 },
          { runId, step: 1, attempt: 0 },
        ],
        events: [{ runId, seq: 1, kind: EventKind.taskFinished, at: new Date(), step: 0, body: bytes(1) }],
        runUpdates: [{ id: otherRun, state: RunState.PAUSED, taskCount: 1 }],
        rows: [queueRow(otherRun, 0)],
      }),
    );
    await expect(write).rejects.toMatchObject({ code: BATCH_CHECK_FAILED, message: expect.stringContaining("no longer current") });
    expect(await snapshot()).toEqual(before);
  });

  it("fails with OWNERSHIP_LOST and writes nothing when another process took a run over", async () => {
    // A process that looks dead to the others (it has no heartbeat row) but still writes.
    const presumedDead = randomUUID();
    const [runId] = await createRuns(1, presumedDead);
    await insertQueueRows(sql, [queueRow(runId, 0)]);
    const adopted = await adoptOrphanRuns(sql, randomUUID(), 600_000, 1000);
    expect(adopted.map((a) => a.id)).toContain(runId);
    const [stillMine] = await createRuns(1, presumedDead);
    const before = await snapshot();

    const write = writeBatch(
      sql,
      batch({
        owner: presumedDead,
        owned: [runId, stillMine],
        events: [{ runId, seq: 1, kind: EventKind.pause, at: new Date(), step: null, body: null }],
        holds: [{ runId, held: true }],
        runUpdates: [{ id: stillMine, state: RunState.PAUSED, taskCount: 1 }],
      }),
    );
    await expect(write).rejects.toMatchObject({ code: OWNERSHIP_LOST });
    expect(await snapshot()).toEqual(before);
  });

  it("removes the rows of cancelled steps, returns those attempts, and notifies the processes whose workers hold them", async () => {
    const peer = randomUUID();
    const { runId, workerId } = await runWithClaimedSteps(2); // steps 0, 1 held by my worker
    const task = `task-${randomUUID()}`;
    await insertQueueRows(sql, [queueRow(runId, 2, { task }), queueRow(runId, 3, { task: "task-ready" })]);
    await claim(sql, { processId: peer, workerId: "w-peer", tasks: [task], queue: "q-batch", limit: 1, leaseMs: 30_000 }); // step 2 held through the peer
    const cancels = await listen(CHANNELS.cancel);

    const { cancelled } = await writeBatch(
      sql,
      batch({
        owned: [runId],
        removals: [1, 2, 3, 9].map((step) => ({ runId, step })), // step 9 has no row
      }),
    );

    expect([...cancelled].sort((a, b) => a.step - b.step)).toEqual([
      { runId, step: 1, attempt: 1, workerId, processId: me },
      { runId, step: 2, attempt: 1, workerId: "w-peer", processId: peer },
      { runId, step: 3, attempt: 0, workerId: null, processId: null },
    ]);
    expect((await queueOf(runId)).map((r) => r.step)).toEqual([0]);
    // Only the peer is told: this process cancels its own workers' attempts from the returned list.
    expect((await cancels.received()).map((p) => JSON.parse(p))).toEqual([[peer, runId, 2, 1]]);
    await cancels.unlisten();
  });

  it("holds the ready rows of paused runs and releases the held ones of resumed runs, leaving claimed rows alone", async () => {
    const { runId: paused } = await runWithClaimedSteps(1); // step 0 held by a worker
    await insertQueueRows(sql, [queueRow(paused, 1), queueRow(paused, 2)]);
    const [resumed] = await createRuns(1);
    await insertQueueRows(sql, [queueRow(resumed, 0, { held: true }), queueRow(resumed, 1, { held: true })]);

    await writeBatch(
      sql,
      batch({
        owned: [paused, resumed],
        holds: [
          { runId: paused, held: true },
          { runId: resumed, held: false },
        ],
      }),
    );

    expect((await queueOf(paused)).map((r) => r.status)).toEqual([QueueStatus.running, QueueStatus.held, QueueStatus.held]);
    expect((await queueOf(resumed)).map((r) => r.status)).toEqual([QueueStatus.ready, QueueStatus.ready]);
  });

  it("removes the inbox entries it applied; one applied twice fails with BATCH_CHECK_FAILED and writes nothing", async () => {
    const [runId] = await createRuns(1);
    const pause = await sendControl(sql, runId, EventKind.pause, Buffer.from("pause it"));
    const resume = await sendControl(sql, runId, EventKind.resume, Buffer.from("resume it"));
    expect((await readInbox(sql, me, 100)).filter((e) => e.runId === runId).map((e) => e.id)).toEqual([pause, resume]);

    await writeBatch(
      sql,
      batch({ owned: [runId], inboxDone: [pause], events: [{ runId, seq: 1, kind: EventKind.pause, at: new Date(), step: null, body: null }] }),
    );
    expect((await readInbox(sql, me, 100)).filter((e) => e.runId === runId).map((e) => e.id)).toEqual([resume]);

    const before = await snapshot();
    const again = writeBatch(
      sql,
      batch({ owned: [runId], inboxDone: [pause, resume], events: [{ runId, seq: 2, kind: EventKind.resume, at: new Date(), step: null, body: null }] }),
    );
    await expect(again).rejects.toMatchObject({ code: BATCH_CHECK_FAILED, message: expect.stringContaining("inbox entry") });
    expect(await snapshot()).toEqual(before);
  });

  it("puts fenced results for another process's runs in the owner's inbox, and notifies the owner", async () => {
    const owner = randomUUID();
    const { runId } = await runWithClaimedSteps(2, "w-mine", me, owner); // the run is the other process's; my worker ran it
    const inbox = await listen(CHANNELS.inbox);
    const receivedAt = new Date("2026-05-06T07:08:09.123Z");

    await writeBatch(
      sql,
      batch({
        foreign: [
          { key: { runId, step: 0, attempt: 1 }, body: bytes(1, 2, 3), receivedAt },
          { key: { runId, step: 1, attempt: 0 }, body: bytes(4), receivedAt }, // stale: dropped, no error
        ],
      }),
    );

    const entries = (await readInbox(sql, owner, 100)).filter((e) => e.runId === runId);
    expect(entries.map(({ kind, step, attempt, body, receivedAt: at }) => ({ kind, step, attempt, body, at }))).toEqual([
      { kind: EventKind.taskFinished, step: 0, attempt: 1, body: Buffer.from([1, 2, 3]), at: receivedAt },
    ]);
    expect((await queueOf(runId)).map((r) => r.step)).toEqual([1]); // the current attempt's row went with it
    expect(await inbox.received()).toEqual([owner]);
    await inbox.unlisten();
  });

  it("announces finished runs, 200 uids per notification, and ready rows to the other dispatchers", async () => {
    const finished = await listen(CHANNELS.finished);
    const ready = await listen(CHANNELS.ready);
    const uids = Array.from({ length: 450 }, () => randomUUID());

    await writeBatch(sql, batch({ finishedUids: uids, notifyReady: true }));

    const payloads = await finished.received();
    expect(payloads.map((p) => p.split(",").length)).toEqual([200, 200, 50]);
    expect(payloads.flatMap((p) => p.split(","))).toEqual(uids);
    expect(await ready.received()).toEqual([""]);

    await writeBatch(sql, batch({ finishedUids: [uids[0]] }));
    expect(await finished.received()).toEqual([...payloads, uids[0]]);
    expect(await ready.received()).toEqual([""]); // notifyReady false: no new one
    await finished.unlisten();
    await ready.unlisten();
  });

  it("resets the row of a retried attempt in place, ready again or claimed again; a stale retry fails and writes nothing", async () => {
    const { runId } = await runWithClaimedSteps(3);
    const [before0, before1] = await queueOf(runId);
    const later = new Date(Date.now() + 60_000);
    const deadline = new Date("2031-01-01T00:00:00.000Z");

    await writeBatch(
      sql,
      batch({
        owned: [runId],
        retries: [
          // Back to the queue after a backoff, with a new assignment and wait deadline.
          { key: { runId, step: 0, attempt: 1 }, row: queueRow(runId, 0, { attempt: 1, availableAt: later, assignment: bytes(99), waitDeadline: deadline }) },
          // Handed straight to a worker again (the in-process fast path): a new attempt.
          { key: { runId, step: 1, attempt: 1 }, row: queueRow(runId, 1, { attempt: 1, claimedBy: { processId: me, workerId: "w-again", leaseMs: 5_000 } }) },
        ],
      }),
    );

    const [row0, row1, row2] = await queueOf(runId);
    expect(row0).toMatchObject({
      attempt: 1,
      status: QueueStatus.ready,
      worker_id: null,
      process_id: null,
      lease_until: null,
      available_at: later,
      wait_deadline: deadline,
      lost_count: before0.lost_count,
    });
    expect(Buffer.from(row0.assignment)).toEqual(Buffer.from([99]));
    expect(row1).toMatchObject({ attempt: 2, status: QueueStatus.running, worker_id: "w-again", process_id: me, lost_count: before1.lost_count });
    expect(row1.lease_until!.getTime()).toBeLessThan(Date.now() + 30_000);
    expect(row2).toMatchObject({ attempt: 1, status: QueueStatus.running }); // untouched

    const snap = await snapshot();
    const stale = writeBatch(
      sql,
      batch({
        owned: [runId],
        retries: [
          { key: { runId, step: 2, attempt: 1 }, row: queueRow(runId, 2, { attempt: 1 }) },
          { key: { runId, step: 0, attempt: 0 }, row: queueRow(runId, 0, { attempt: 0 }) }, // attempt 1 is current
        ],
      }),
    );
    await expect(stale).rejects.toMatchObject({ code: BATCH_CHECK_FAILED });
    expect(await snapshot()).toEqual(snap);
  });
});

describe("insertQueueRows", () => {
  it("inserts rows that carry their run ids: ready, held (a paused run) or already claimed", async () => {
    const [runId] = await createRuns(1);
    await insertQueueRows(sql, [
      queueRow(runId, 0),
      queueRow(runId, 1, { held: true, attempt: 2 }),
      queueRow(runId, 2, { claimedBy: { processId: me, workerId: "w-chunk", leaseMs: 1_000 } }),
    ]);
    await insertQueueRows(sql, []); // nothing to do
    expect((await queueOf(runId)).map(({ step, attempt, status, worker_id }) => ({ step, attempt, status, worker_id }))).toEqual([
      { step: 0, attempt: 0, status: QueueStatus.ready, worker_id: null },
      { step: 1, attempt: 2, status: QueueStatus.held, worker_id: null },
      { step: 2, attempt: 1, status: QueueStatus.running, worker_id: "w-chunk" },
    ]);
  });
});
