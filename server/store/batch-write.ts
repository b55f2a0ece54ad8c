// One group commit's writes as ONE SQL statement. On these machines a round
// trip to PostgreSQL costs about 0.45 ms and BEGIN/COMMIT are round trips of
// their own, so a transaction of six statements spends ~3 ms talking; a
// single statement of data-modifying CTEs commits the same writes atomically
// in one round trip (measured: 4.9 -> ~1.5 ms per chain step). The hot parts
// take their rows as one JSON parameter each (built by V8's native
// JSON.stringify, unpacked by json_to_recordset): postgres.js escaping a dozen
// arrays value by value cost more server CPU than anything else per task.
//
// The statement can also check what the engine assumed optimistically:
// that every result it applied was for the current attempt (the fence) and
// that no request_id was taken meanwhile. If not, pw_check aborts the whole
// statement and nothing is written.

import type { PendingQuery } from "postgres";
import { byteaArray, type Sql, type Tx } from "./database.js";
import type { NewRun, RunStateChange, StoredEvent } from "./run-store.js";
import { QueueStatus, type AttemptKey, type CancelledAttempt, type QueueRow } from "./task-queue.js";
import { CHANNELS } from "./channels.js";

export interface NewRunRow extends NewRun {
  createdAt: Date;
  /** The run's state once its start was applied (it may even be finished). */
  state: number;
  finishedAt: Date | null;
  outcome: Uint8Array | null;
  finalState: Uint8Array | null;
}

/** A queue row of a run created in the same batch carries its uid instead of its id. */
export type BatchQueueRow = QueueRow & { runUid?: string };

export interface BatchWrite {
  /** The writing process: owner of the new runs, and of every run it writes. */
  owner: string;
  /** Existing runs the batch writes: the statement checks this process still owns them. */
  owned: number[];
  newRuns: NewRunRow[];
  /** Finished attempts whose rows go away; each must still be current. */
  completions: AttemptKey[];
  /** Finished attempts retried at once: their row is reset in place (fenced too). */
  retries: { key: AttemptKey; row: QueueRow }[];
  /** Steps cancelled: their rows go away, whoever holds them. */
  removals: { runId: number; step: number }[];
  rows: BatchQueueRow[];
  holds: { runId: number; held: boolean }[];
  events: StoredEvent[];
  runUpdates: RunStateChange[];
  /** Results for runs another process owns: fenced here, then put in the owner's inbox. */
  foreign: { key: AttemptKey; body: Uint8Array; receivedAt: Date }[];
  /** Inbox entries this batch applied (removed with it). */
  inboxDone: number[];
  /** Ready rows were written that no local worker took: wake the other processes' dispatchers. */
  notifyReady: boolean;
  /** Runs this batch finishes, announced to the other processes (their clients may be waiting on them); empty when alone. */
  finishedUids: string[];
}

/** Uids per notification: a payload must stay under PostgreSQL's 8,000 bytes. */
const UIDS_PER_NOTIFICATION = 200;

export interface BatchWriteResult {
  /** Internal ids of the new runs, by uid. */
  runIds: Map<string, number>;
  /** Attempts removed by a cancel. Those held through other processes were notified to them. */
  cancelled: CancelledAttempt[];
}

/** The SQLSTATE pw_check raises with (a stale result, a taken request_id). */
export const BATCH_CHECK_FAILED = "PW001";
/** The SQLSTATE pw_check_owner raises with (a run was taken over by another process). */
export const OWNERSHIP_LOST = "PW002";

/**
 * Inserts more queue rows (a huge batch writes them in chunks after its main
 * statement, in the same transaction, so that only a chunk or two is encoded
 * at a time). The rows must carry their run ids.
 */
export async function insertQueueRows(sql: Sql | Tx, rows: QueueRow[]): Promise<void> {
  if (rows.length === 0) return;
  const ms = (column: string) => sql.unsafe(`to_timestamp(${column} / 1000.0)`);
  await sql`${insertRows(sql, ms, rows, false)}`;
}

/** The insert of queue rows, from one JSON parameter; `withNew`: rows of runs inserted by the same statement (CTE nr) give their uid. */
function insertRows(sql: Sql | Tx, ms: (column: string) => PendingQuery<any>, rows: (QueueRow & { runUid?: string })[], withNew: boolean): PendingQuery<any> {
  const json = JSON.stringify(
    rows.map((r) => ({
      r: r.runUid ? null : r.runId,
      u: r.runUid ?? null,
      s: r.step,
      a: r.attempt,
      t: r.task,
      q: r.queue,
      st: queueStatus(r),
      av: r.availableAt.getTime(),
      p: r.claimedBy?.processId ?? null,
      w: r.claimedBy?.workerId ?? null,
      l: r.claimedBy?.leaseMs ?? 0,
      as: b64(r.assignment),
      wd: r.waitDeadline?.getTime() ?? null,
    })),
  );
  return sql`
    insert into task_queue (run_id, step, attempt, task, queue, status, available_at, process_id, worker_id, claimed_at, lease_until, assignment, wait_deadline)
    select ${withNew ? sql`coalesce(k.r, nr.id)` : sql`k.r`}, k.s, k.a + case when k.w is null then 0 else 1 end, k.t, k.q, k.st, ${ms("k.av")},
           k.p, k.w,
           case when k.w is null then null else now() end,
           case when k.w is null then null else now() + k.l * interval '1 millisecond' end,
           decode(k.as, 'base64'), ${ms("k.wd")}
    from json_to_recordset(${json}::text::json) as k(r bigint, u uuid, s integer, a integer, t text, q text, st smallint, av float8, p uuid, w text, l integer, "as" text, wd float8)
    ${withNew ? sql`left join nr on nr.uid = k.u` : sql``}`;
}

/** The status a queue row is written with. */
function queueStatus(r: QueueRow): number {
  return r.claimedBy ? QueueStatus.running : r.held ? QueueStatus.held : QueueStatus.ready;
}

/** Bytes as base64 for a JSON parameter (null stays null: SQL's decode gives null). */
function b64(u: Uint8Array | null | undefined): string | null {
  return u && u.length ? Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("base64") : null;
}

export async function writeBatch(sql: Sql | Tx, w: BatchWrite): Promise<BatchWriteResult> {
  // Milliseconds since the epoch (a JSON number) as a timestamptz.
  const ms = (column: string) => sql.unsafe(`to_timestamp(${column} / 1000.0)`);
  // Only the parts this batch needs go into the statement: PostgreSQL plans a
  // statement at every execution (custom plans), and planning all twelve parts
  // of an empty one cost more than running it (1.6 of 2 ms). A chain step uses
  // three. Each combination is its own prepared statement.
  type Fragment = PendingQuery<any>;
  const ctes: Fragment[] = [];
  const checks: Fragment[] = [];
  const outputs: Fragment[] = [];
  const rows = w.rows;
  const retry = w.retries;

  if (w.newRuns.length) {
    const json = JSON.stringify(
      w.newRuns.map((r) => ({
        u: r.uid,
        rq: r.requestId,
        rh: b64(r.requestHash),
        n: r.name,
        st: r.state,
        sp: b64(r.spec),
        ca: r.createdAt.getTime(),
        dl: r.deadline?.getTime() ?? null,
        fa: r.finishedAt?.getTime() ?? null,
        o: b64(r.outcome),
        fs: b64(r.finalState),
        tc: r.taskCount,
      })),
    );
    ctes.push(sql`nr as (
      insert into runs (uid, request_id, request_hash, name, state, spec, created_at, deadline, finished_at, outcome, final_state, task_count, owner_id)
      select n.u, n.rq, decode(n.rh, 'base64'), n.n, n.st, decode(n.sp, 'base64'), ${ms("n.ca")}, ${ms("n.dl")}, ${ms("n.fa")},
             decode(n.o, 'base64'), decode(n.fs, 'base64'), n.tc, ${w.owner}::uuid
      from json_to_recordset(${json}::text::json) as n(u uuid, rq text, rh text, n text, st smallint, sp text, ca float8, dl float8, fa float8, o text, fs text, tc integer)
      on conflict (request_id) do nothing
      returning id, uid)`);
    checks.push(sql`pw_check((select count(*) from nr) = ${w.newRuns.length}, 'a request_id was taken meanwhile')`);
    outputs.push(sql`(select json_agg(json_build_array(id, uid)) from nr) as new_runs`);
  }
  if (w.completions.length) {
    const json = JSON.stringify(w.completions.map((k) => ({ r: k.runId, s: k.step, a: k.attempt })));
    ctes.push(sql`done as (
      delete from task_queue q
      using json_to_recordset(${json}::text::json) as k(r bigint, s integer, a integer)
      where q.run_id = k.r and q.step = k.s and q.attempt = k.a
      returning 1)`);
  }
  if (retry.length) {
    ctes.push(sql`retried as (
      update task_queue q set
        status = k.status, attempt = k.attempt + case when k.worker_id is null then 0 else 1 end,
        available_at = k.available_at, process_id = k.process_id, worker_id = k.worker_id,
        claimed_at = case when k.worker_id is null then null else now() end,
        lease_until = case when k.worker_id is null then null else now() + k.lease_ms * interval '1 millisecond' end,
        assignment = k.assignment, wait_deadline = k.wait_deadline
      from unnest(
        ${retry.map((r) => r.key.runId)}::bigint[],
        ${retry.map((r) => r.key.step)}::integer[],
        ${retry.map((r) => r.key.attempt)}::integer[],
        ${retry.map((r) => queueStatus(r.row))}::smallint[],
        ${retry.map((r) => r.row.availableAt.toISOString())}::timestamptz[],
        ${retry.map((r) => r.row.claimedBy?.processId ?? null)}::uuid[],
        ${retry.map((r) => r.row.claimedBy?.workerId ?? null)}::text[],
        ${retry.map((r) => r.row.claimedBy?.leaseMs ?? 0)}::integer[],
        ${byteaArray(sql, retry.map((r) => r.row.assignment))}::bytea[],
        ${retry.map((r) => r.row.waitDeadline?.toISOString() ?? null)}::timestamptz[]
      ) as k(run_id, step, attempt, status, available_at, process_id, worker_id, lease_ms, assignment, wait_deadline)
      where q.run_id = k.run_id and q.step = k.step and q.attempt = k.attempt
      returning 1)`);
  }
  if (w.completions.length || retry.length) {
    const done = w.completions.length ? sql`(select count(*) from done)` : sql`0`;
    const retried = retry.length ? sql`(select count(*) from retried)` : sql`0`;
    checks.push(sql`pw_check(${done} + ${retried} = ${w.completions.length + retry.length}, 'a result was for an attempt that is no longer current')`);
  }
  if (w.removals.length) {
    ctes.push(sql`removed as (
      delete from task_queue q
      using unnest(${w.removals.map((r) => r.runId)}::bigint[], ${w.removals.map((r) => r.step)}::integer[]) as k(run_id, step)
      where q.run_id = k.run_id and q.step = k.step
      returning q.run_id, q.step, q.attempt, q.worker_id, q.process_id)`);
    outputs.push(sql`(select json_agg(json_build_array(run_id, step, attempt, worker_id, process_id)) from removed) as removed`);
    outputs.push(sql`(select count(pg_notify(${CHANNELS.cancel}, json_build_array(process_id, run_id, step, attempt)::text))
       from removed where process_id is not null and process_id <> ${w.owner}::uuid) as cancels_notified`);
  }
  if (rows.length) {
    const withNew = w.newRuns.length > 0;
    ctes.push(sql`enq as (${insertRows(sql, ms, rows, withNew)} returning 1)`);
  }
  if (w.events.length) {
    const json = JSON.stringify(w.events.map((e) => ({ r: e.runId, q: e.seq, k: e.kind, at: e.at.getTime(), s: e.step, b: b64(e.body) })));
    ctes.push(sql`ev as (
      insert into run_events (run_id, seq, kind, at, step, body)
      select k.r, k.q, k.k, ${ms("k.at")}, k.s, decode(k.b, 'base64')
      from json_to_recordset(${json}::text::json) as k(r bigint, q integer, k smallint, at float8, s integer, b text)
      returning 1)`);
  }
  if (w.runUpdates.length) {
    const json = JSON.stringify(
      w.runUpdates.map((c) => ({ i: c.id, st: c.state, tc: c.taskCount, fa: c.finishedAt?.getTime() ?? null, o: b64(c.outcome), fs: b64(c.finalState) })),
    );
    ctes.push(sql`upd as (
      update runs set state = c.st, task_count = c.tc, finished_at = ${ms("c.fa")}, outcome = decode(c.o, 'base64'), final_state = decode(c.fs, 'base64')
      from json_to_recordset(${json}::text::json) as c(i bigint, st smallint, tc integer, fa float8, o text, fs text)
      where runs.id = c.i
      returning 1)`);
  }
  if (w.foreign.length) {
    const f = w.foreign;
    ctes.push(sql`foreign_done as (
      delete from task_queue q
      using unnest(${f.map((x) => x.key.runId)}::bigint[], ${f.map((x) => x.key.step)}::integer[], ${f.map((x) => x.key.attempt)}::integer[]) as k(run_id, step, attempt)
      where q.run_id = k.run_id and q.step = k.step and q.attempt = k.attempt
      returning q.run_id, q.step, q.attempt)`);
    ctes.push(sql`foreign_in as (
      insert into run_inbox (run_id, kind, step, attempt, body, received_at)
      select d.run_id, 2, d.step, d.attempt, k.body, k.received_at
      from foreign_done d join unnest(
        ${f.map((x) => x.key.runId)}::bigint[], ${f.map((x) => x.key.step)}::integer[], ${f.map((x) => x.key.attempt)}::integer[],
        ${byteaArray(sql, f.map((x) => x.body))}::bytea[], ${f.map((x) => x.receivedAt.toISOString())}::timestamptz[]
      ) as k(run_id, step, attempt, body, received_at) on k.run_id = d.run_id and k.step = d.step and k.attempt = d.attempt
      returning run_id)`);
    outputs.push(sql`(select count(pg_notify(${CHANNELS.inbox}, o.owner_id::text)) from (select distinct r.owner_id from runs r where r.id in (select run_id from foreign_in)) o) as inbox_notified`);
  }
  if (w.inboxDone.length) {
    ctes.push(sql`inbox_done as (delete from run_inbox where id = any(${w.inboxDone}::bigint[]) returning 1)`);
    checks.push(sql`pw_check((select count(*) from inbox_done) = ${w.inboxDone.length}, 'an inbox entry was applied twice')`);
  }
  if (w.holds.length) {
    ctes.push(sql`held as (
      update task_queue q set status = h.to_status
      from unnest(
        ${w.holds.map((h) => h.runId)}::bigint[],
        ${w.holds.map((h) => (h.held ? QueueStatus.ready : QueueStatus.held))}::smallint[],
        ${w.holds.map((h) => (h.held ? QueueStatus.held : QueueStatus.ready))}::smallint[]) as h(run_id, from_status, to_status)
      where q.run_id = h.run_id and q.status = h.from_status
      returning 1)`);
  }
  if (w.owned.length) {
    checks.push(sql`pw_check_owner((select count(*) from runs where id = any(${w.owned}::bigint[]) and owner_id is distinct from ${w.owner}::uuid) = 0)`);
  }
  if (w.notifyReady) outputs.push(sql`pg_notify(${CHANNELS.ready}, '') as ready_notified`);
  if (w.finishedUids.length) {
    const payloads: string[] = [];
    for (let i = 0; i < w.finishedUids.length; i += UIDS_PER_NOTIFICATION) payloads.push(w.finishedUids.slice(i, i + UIDS_PER_NOTIFICATION).join(","));
    outputs.push(sql`(select count(pg_notify(${CHANNELS.finished}, p)) from unnest(${payloads}::text[]) as p) as finished_notified`);
  }
  if (ctes.length === 0 && checks.length === 0 && outputs.length === 0) return { runIds: new Map(), cancelled: [] };

  const join = (parts: Fragment[], separator: Fragment) => parts.slice(1).reduce((acc, p) => sql`${acc}${separator}${p}`, parts[0]);
  const selected: Fragment[] = [checks.length ? sql`(${join(checks, sql` and `)}) as ok` : sql`true as ok`, ...outputs];
  const [result] = await sql<{ new_runs?: [number, string][] | null; removed?: [number, number, number, string | null, string | null][] | null }[]>`
    ${ctes.length ? sql`with ${join(ctes, sql`, `)}` : sql``}
    select ${join(selected, sql`, `)}`;
  return {
    runIds: new Map((result.new_runs ?? []).map(([id, uid]) => [uid, Number(id)])),
    cancelled: (result.removed ?? []).map(([runId, step, attempt, workerId, processId]) => ({ runId: Number(runId), step, attempt, workerId, processId })),
  };
}
