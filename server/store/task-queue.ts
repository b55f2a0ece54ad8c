// SQL for the task queue: one row per task step waiting for a worker or held
// by one. Statements of their own (claims, the careful mode's fence, leases,
// lost attempts) and the fragments the batch statement (batch-write.ts)
// composes (rows inserted, reset, removed, held).

import type { TaskAssignment } from "@pipewright/protocol";
import { base64, byteaArray, code, msToTimestamp, type Fragment, type Sql, type Tx } from "./database.js";
import { forgetPredecessors, liveProcessIds } from "./process-registry.js";

/** task_queue.status. Written into SQL with code(): partial indexes name ready (0) and running (1). */
export const QueueStatus = { ready: 0, running: 1, held: 2 } as const;

/** The SET list that puts a claimed row back to ready, held by nobody. */
function unclaimed(sql: Sql | Tx): Fragment {
  return sql`status = ${code(sql, QueueStatus.ready)}, process_id = null, worker_id = null, claimed_at = null, lease_until = null`;
}

/** Rows held by a worker, in a WHERE clause. */
function running(sql: Sql | Tx, alias = ""): Fragment {
  return sql`${sql.unsafe(alias ? `${alias}.` : "")}status = ${code(sql, QueueStatus.running)}`;
}

export interface QueueRow {
  runId: number;
  step: number;
  task: string;
  queue: string;
  availableAt: Date;
  /** The TaskAssignment message without its key. */
  assignment: Uint8Array;
  /** Paused runs enqueue held rows. */
  held: boolean;
  /** Attempt number the row starts from (its previous attempt, for retries). */
  attempt: number;
  /** Fails with pipewright.Timeout if still waiting for a worker then. */
  waitDeadline?: Date;
  /** When set, the row is inserted already claimed by this worker (the in-process fast path). */
  claimedBy?: { processId: string; workerId: string; leaseMs: number };
}

export interface AttemptKey {
  runId: number;
  step: number;
  attempt: number;
}

export interface ClaimedTask {
  runId: number;
  runUid: string;
  step: number;
  attempt: number;
  task: string;
  assignment: Uint8Array;
  /** The assignment already decoded, when the engine hands it over straight from memory. */
  message?: TaskAssignment;
  /** About its bytes, when known (the engine measured it). */
  size?: number;
}

/**
 * Removes the rows of attempts that finished, but only where the attempt is
 * still the current one: a result for an older attempt is stale and finds no
 * row. Returns the keys that matched (the results to apply).
 */
export async function completeAttempts(tx: Tx, keys: AttemptKey[]): Promise<AttemptKey[]> {
  if (keys.length === 0) return [];
  const rows = await tx<{ run_id: number; step: number; attempt: number }[]>`${deleteCurrentAttempts(tx, keys)}`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt }));
}

/**
 * The fence: deletes the rows of these attempts where each is still the
 * current one (a stale attempt finds no row), returning run_id, step, attempt
 * of those deleted. A statement of its own, or a CTE of the batch statement.
 */
export function deleteCurrentAttempts(sql: Sql | Tx, keys: AttemptKey[]): Fragment {
  const json = JSON.stringify(keys.map((k) => ({ r: k.runId, s: k.step, a: k.attempt })));
  return sql`
    delete from task_queue q
    using json_to_recordset(${json}::text::json) as k(r bigint, s integer, a integer)
    where q.run_id = k.r and q.step = k.s and q.attempt = k.a
    returning q.run_id, q.step, q.attempt`;
}

/** Resets in place the rows of attempts retried at once (fenced: only current attempts match). */
export function resetAttempts(sql: Sql | Tx, retries: { key: AttemptKey; row: QueueRow }[]): Fragment {
  return sql`
    update task_queue q set
      status = k.status, attempt = k.attempt + case when k.worker_id is null then 0 else 1 end,
      available_at = k.available_at, process_id = k.process_id, worker_id = k.worker_id,
      claimed_at = case when k.worker_id is null then null else now() end,
      lease_until = case when k.worker_id is null then null else now() + k.lease_ms * interval '1 millisecond' end,
      assignment = k.assignment, wait_deadline = k.wait_deadline
    from unnest(
      ${retries.map((r) => r.key.runId)}::bigint[],
      ${retries.map((r) => r.key.step)}::integer[],
      ${retries.map((r) => r.key.attempt)}::integer[],
      ${retries.map((r) => statusOf(r.row))}::smallint[],
      ${retries.map((r) => r.row.availableAt.toISOString())}::timestamptz[],
      ${retries.map((r) => r.row.claimedBy?.processId ?? null)}::uuid[],
      ${retries.map((r) => r.row.claimedBy?.workerId ?? null)}::text[],
      ${retries.map((r) => r.row.claimedBy?.leaseMs ?? 0)}::integer[],
      ${byteaArray(
        sql,
        retries.map((r) => r.row.assignment),
      )}::bytea[],
      ${retries.map((r) => r.row.waitDeadline?.toISOString() ?? null)}::timestamptz[]
    ) as k(run_id, step, attempt, status, available_at, process_id, worker_id, lease_ms, assignment, wait_deadline)
    where q.run_id = k.run_id and q.step = k.step and q.attempt = k.attempt
    returning 1`;
}

/** Deletes the rows of cancelled steps, whoever holds them, returning who did (run_id, step, attempt, worker_id, process_id). */
export function removeSteps(sql: Sql | Tx, steps: { runId: number; step: number }[]): Fragment {
  return sql`
    delete from task_queue q
    using unnest(${steps.map((r) => r.runId)}::bigint[], ${steps.map((r) => r.step)}::integer[]) as k(run_id, step)
    where q.run_id = k.run_id and q.step = k.step
    returning q.run_id, q.step, q.attempt, q.worker_id, q.process_id`;
}

/** Holds a run's ready rows (pause) or lets its held rows go (resume). */
export function holdRows(sql: Sql | Tx, holds: { runId: number; held: boolean }[]): Fragment {
  return sql`
    update task_queue q set status = h.to_status
    from unnest(
      ${holds.map((h) => h.runId)}::bigint[],
      ${holds.map((h) => (h.held ? QueueStatus.ready : QueueStatus.held))}::smallint[],
      ${holds.map((h) => (h.held ? QueueStatus.held : QueueStatus.ready))}::smallint[]) as h(run_id, from_status, to_status)
    where q.run_id = h.run_id and q.status = h.from_status
    returning 1`;
}

/**
 * Inserts queue rows, from one JSON parameter. `newRuns`: the name of a CTE
 * of runs inserted by the same statement (columns id, uid): rows of those
 * runs carry their uid instead of their id.
 */
export function insertRows(sql: Sql | Tx, rows: (QueueRow & { runUid?: string })[], newRuns?: string): Fragment {
  const json = JSON.stringify(
    rows.map((r) => ({
      r: r.runUid ? null : r.runId,
      u: r.runUid ?? null,
      s: r.step,
      a: r.attempt,
      t: r.task,
      q: r.queue,
      st: statusOf(r),
      av: r.availableAt.getTime(),
      p: r.claimedBy?.processId ?? null,
      w: r.claimedBy?.workerId ?? null,
      l: r.claimedBy?.leaseMs ?? 0,
      as: base64(r.assignment),
      wd: r.waitDeadline?.getTime() ?? null,
    })),
  );
  return sql`
    insert into task_queue (run_id, step, attempt, task, queue, status, available_at, process_id, worker_id, claimed_at, lease_until, assignment, wait_deadline)
    select ${newRuns ? sql`coalesce(k.r, nr.id)` : sql`k.r`}, k.s, k.a + case when k.w is null then 0 else 1 end, k.t, k.q, k.st, ${msToTimestamp(sql, "k.av")},
           k.p, k.w,
           case when k.w is null then null else now() end,
           case when k.w is null then null else now() + k.l * interval '1 millisecond' end,
           decode(k.as, 'base64'), ${msToTimestamp(sql, "k.wd")}
    from json_to_recordset(${json}::text::json) as k(r bigint, u uuid, s integer, a integer, t text, q text, st smallint, av float8, p uuid, w text, l integer, "as" text, wd float8)
    ${newRuns ? sql`left join ${sql.unsafe(newRuns)} nr on nr.uid = k.u` : sql``}`;
}

/**
 * Inserts more queue rows (a huge batch writes them in chunks after its main
 * statement, in the same transaction, so that only a chunk or two is encoded
 * at a time). The rows must carry their run ids.
 */
export async function insertQueueRows(sql: Sql | Tx, rows: QueueRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`${insertRows(sql, rows)}`;
}

/** The status a queue row is written with. */
function statusOf(r: QueueRow): number {
  return r.claimedBy ? QueueStatus.running : r.held ? QueueStatus.held : QueueStatus.ready;
}

export interface CancelledAttempt extends AttemptKey {
  workerId: string | null;
  processId: string | null;
}

export interface ClaimRequest {
  processId: string;
  workerId: string;
  tasks: string[];
  queue: string;
  limit: number;
  leaseMs: number;
  /** Written as the rows' claimed_at: names this claim, to undo it if its answer is lost (see claimToken; default: a fresh one). */
  token?: string;
}

/**
 * A timestamp unique enough to name one claim (the current millisecond plus
 * three random digits of microseconds). A claim whose answer is lost (the
 * connection broke after PostgreSQL committed it) left rows held by a worker
 * that never got them: their lease kept them away for 30 s, or for good while
 * the worker's heartbeats renewed it. The token finds exactly those rows.
 */
export function claimToken(): string {
  const iso = new Date().toISOString(); // ...T03:34:36.119Z
  return `${iso.slice(0, -1)}${String(Math.floor(Math.random() * 1000)).padStart(3, "0")}Z`;
}

/** Puts back the rows a claim took, if it was committed after all (its answer was lost). Returns how many. */
export async function undoClaim(sql: Sql, workerId: string, token: string): Promise<number> {
  const rows = await sql`
    update task_queue set ${unclaimed(sql)}
    where worker_id = ${workerId} and claimed_at = ${token}::timestamptz and ${running(sql)}
    returning 1`;
  return rows.length;
}

/**
 * Hands up to `limit` ready rows of one queue to one worker, oldest first,
 * reading them in the order of the task_queue_ready index. SKIP LOCKED lets
 * several processes claim from the same table without waiting on each other.
 */
export async function claim(sql: Sql, r: ClaimRequest): Promise<ClaimedTask[]> {
  if (r.limit <= 0) return [];
  const rows = await sql<{ run_id: number; uid: string; step: number; attempt: number; task: string; assignment: Uint8Array }[]>`
    with picked as (
      select run_id, step from task_queue
      where status = ${code(sql, QueueStatus.ready)} and queue = ${r.queue} and task = any(${r.tasks}::text[]) and available_at <= now()
      order by queue, available_at, run_id, step
      limit ${r.limit}
      for update skip locked
    )
    update task_queue q set
      status = ${code(sql, QueueStatus.running)}, attempt = q.attempt + 1, process_id = ${r.processId}::uuid, worker_id = ${r.workerId},
      claimed_at = ${r.token ?? claimToken()}::timestamptz, lease_until = now() + ${r.leaseMs} * interval '1 millisecond'
    from picked, runs
    where q.run_id = picked.run_id and q.step = picked.step and runs.id = q.run_id
    returning q.run_id, runs.uid, q.step, q.attempt, q.task, q.assignment`;
  return rows.map((x) => ({ runId: x.run_id, runUid: x.uid, step: x.step, attempt: x.attempt, task: x.task, assignment: x.assignment }));
}

/** An attempt put back in the queue, with how many times that happened to its step. */
export interface LostAttempt extends AttemptKey {
  lostCount: number;
  /** The run's public id and the task, for the log line that says it was re-queued. */
  runUid: string;
  task: string;
}

interface LostRow {
  run_id: number;
  run_uid: string;
  step: number;
  attempt: number;
  task: string;
  lost_count: number;
}

/** What a re-queueing update returns (the run's uid by its primary key: re-queues are rare, one index probe each). */
function lostColumns(sql: Sql): Fragment {
  return sql`run_id, (select uid::text from runs where runs.id = task_queue.run_id) as run_uid, step, attempt, task, lost_count`;
}

function lostAttempt(r: LostRow): LostAttempt {
  return { runId: r.run_id, runUid: r.run_uid, step: r.step, attempt: r.attempt, task: r.task, lostCount: r.lost_count };
}

/** Puts back the rows a worker held (its stream broke): they are handed out again at once. */
export async function requeueWorker(sql: Sql, workerId: string): Promise<LostAttempt[]> {
  const rows = await sql<LostRow[]>`
    update task_queue set ${unclaimed(sql)}, available_at = now(), lost_count = lost_count + 1
    where worker_id = ${workerId} and ${running(sql)}
    returning ${lostColumns(sql)}`;
  return rows.map(lostAttempt);
}

/** Extends the leases of the rows a worker holds. */
export async function extendLeases(sql: Sql, workerId: string, leaseMs: number): Promise<void> {
  await sql`update task_queue set lease_until = now() + ${leaseMs} * interval '1 millisecond' where worker_id = ${workerId} and ${running(sql)}`;
}

/**
 * Puts back rows whose lease ran out or whose process stopped answering (it
 * crashed, or lost its database connection): the safety net behind the
 * in-memory detection of broken streams.
 */
export async function reapLostAttempts(sql: Sql, processSilenceMs: number): Promise<LostAttempt[]> {
  const rows = await sql<LostRow[]>`
    update task_queue set ${unclaimed(sql)}, available_at = now(), lost_count = lost_count + 1
    where ${running(sql)} and (
      lease_until < now()
      or process_id is null
      or process_id not in (${liveProcessIds(sql, processSilenceMs)}))
    returning ${lostColumns(sql)}`;
  return rows.map(lostAttempt);
}

/** A row written already claimed for a worker, whose delivery did not happen (its batch's commit is in doubt). */
export interface UndeliveredClaim {
  runUid: string;
  step: number;
  workerId: string;
}

/**
 * Puts back in the queue the rows claimed for these deliveries, if they were
 * written after all. Only rows still claimed by that very worker are touched.
 * Returns how many went back.
 */
export async function unclaimUndelivered(sql: Sql, claims: UndeliveredClaim[]): Promise<number> {
  if (claims.length === 0) return 0;
  const rows = await sql`
    update task_queue q set ${unclaimed(sql)}
    from unnest(${claims.map((c) => c.runUid)}::uuid[], ${claims.map((c) => c.step)}::integer[], ${claims.map((c) => c.workerId)}::text[]) as k(uid, step, worker)
    join runs r on r.uid = k.uid
    where q.run_id = r.id and q.step = k.step and q.worker_id = k.worker and ${running(sql, "q")}
    returning 1`;
  return rows.length;
}

/** Removes every queue row of a run (it ended outside the normal flow). */
export async function removeRunRows(sql: Sql | Tx, runId: number): Promise<void> {
  await sql`delete from task_queue where run_id = ${runId}`;
}

/** The steps of a run that a worker holds right now (shown as RUNNING). */
export async function runningSteps(sql: Sql, runId: number): Promise<number[]> {
  const rows = await sql<{ step: number }[]>`select step from task_queue where run_id = ${runId} and ${running(sql)}`;
  return rows.map((r) => r.step);
}

/** Ready rows whose wait deadline passed: the attempts to fail with a timeout. */
export async function expiredWaits(sql: Sql, limit: number): Promise<AttemptKey[]> {
  const rows = await sql<{ run_id: number; step: number; attempt: number }[]>`
    select run_id, step, attempt from task_queue
    where status = ${code(sql, QueueStatus.ready)} and wait_deadline is not null and wait_deadline < now()
    order by wait_deadline limit ${limit}`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt }));
}

/**
 * Forgets the processes registered at the same host and port as this one and
 * puts back the attempts they held. Safe because the port is ours now: two
 * live servers cannot both be bound to it, so those processes are dead (a
 * restart after kill -9). Attempts are reclaimed at once instead of after the
 * liveness timeout.
 */
export async function reclaimPredecessors(sql: Sql, id: string, address: string): Promise<LostAttempt[]> {
  const rows = await sql<LostRow[]>`
    with dead as (${forgetPredecessors(sql, id, address)})
    update task_queue set ${unclaimed(sql)}, available_at = now(), lost_count = lost_count + 1
    where ${running(sql)} and process_id in (select id from dead)
    returning ${lostColumns(sql)}`;
  return rows.map(lostAttempt);
}
