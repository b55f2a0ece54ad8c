// SQL for the task queue outside the batch statement (batch-write.ts):
// claims, fenced completion (careful mode), leases and lost attempts. One row
// per task step waiting for a worker or held by one.

import type { TaskAssignment } from "@pipewright/protocol";
import type { Sql, Tx } from "./database.js";

export const QueueStatus = { ready: 0, running: 1, held: 2 } as const;

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
  const rows = await tx<{ run_id: number; step: number; attempt: number }[]>`
    delete from task_queue q
    using unnest(${keys.map((k) => k.runId)}::bigint[], ${keys.map((k) => k.step)}::integer[], ${keys.map((k) => k.attempt)}::integer[]) as k(run_id, step, attempt)
    where q.run_id = k.run_id and q.step = k.step and q.attempt = k.attempt
    returning q.run_id, q.step, q.attempt`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt }));
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
    update task_queue set status = 0, process_id = null, worker_id = null, claimed_at = null, lease_until = null
    where worker_id = ${workerId} and claimed_at = ${token}::timestamptz and status = 1
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
      where status = 0 and queue = ${r.queue} and task = any(${r.tasks}::text[]) and available_at <= now()
      order by queue, available_at, run_id, step
      limit ${r.limit}
      for update skip locked
    )
    update task_queue q set
      status = 1, attempt = q.attempt + 1, process_id = ${r.processId}::uuid, worker_id = ${r.workerId},
      claimed_at = ${r.token ?? claimToken()}::timestamptz, lease_until = now() + ${r.leaseMs} * interval '1 millisecond'
    from picked, runs
    where q.run_id = picked.run_id and q.step = picked.step and runs.id = q.run_id
    returning q.run_id, runs.uid, q.step, q.attempt, q.task, q.assignment`;
  return rows.map((x) => ({ runId: x.run_id, runUid: x.uid, step: x.step, attempt: x.attempt, task: x.task, assignment: x.assignment }));
}

/** An attempt put back in the queue, with how many times that happened to its step. */
export interface LostAttempt extends AttemptKey {
  lostCount: number;
}

/** Puts back the rows a worker held (its stream broke): they are handed out again at once. */
export async function requeueWorker(sql: Sql, workerId: string): Promise<LostAttempt[]> {
  const rows = await sql<{ run_id: number; step: number; attempt: number; lost_count: number }[]>`
    update task_queue set status = 0, process_id = null, worker_id = null, claimed_at = null, lease_until = null,
      available_at = now(), lost_count = lost_count + 1
    where worker_id = ${workerId} and status = 1
    returning run_id, step, attempt, lost_count`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt, lostCount: r.lost_count }));
}

/** Extends the leases of the rows a worker holds. */
export async function extendLeases(sql: Sql, workerId: string, leaseMs: number): Promise<void> {
  await sql`update task_queue set lease_until = now() + ${leaseMs} * interval '1 millisecond' where worker_id = ${workerId} and status = 1`;
}

/**
 * Puts back rows whose lease ran out or whose process stopped answering (it
 * crashed, or lost its database connection): the safety net behind the
 * in-memory detection of broken streams.
 */
export async function reapLostAttempts(sql: Sql, processSilenceMs: number): Promise<LostAttempt[]> {
  const rows = await sql<{ run_id: number; step: number; attempt: number; lost_count: number }[]>`
    update task_queue set status = 0, process_id = null, worker_id = null, claimed_at = null, lease_until = null,
      available_at = now(), lost_count = lost_count + 1
    where status = 1 and (
      lease_until < now()
      or process_id is null
      or process_id not in (select id from server_processes where heartbeat_at > now() - ${processSilenceMs} * interval '1 millisecond'))
    returning run_id, step, attempt, lost_count`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt, lostCount: r.lost_count }));
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
    update task_queue q set status = 0, process_id = null, worker_id = null, claimed_at = null, lease_until = null
    from unnest(${claims.map((c) => c.runUid)}::uuid[], ${claims.map((c) => c.step)}::integer[], ${claims.map((c) => c.workerId)}::text[]) as k(uid, step, worker)
    join runs r on r.uid = k.uid
    where q.run_id = r.id and q.step = k.step and q.worker_id = k.worker and q.status = 1
    returning 1`;
  return rows.length;
}

/** Removes every queue row of a run (it ended outside the normal flow). */
export async function removeRunRows(sql: Sql | Tx, runId: number): Promise<void> {
  await sql`delete from task_queue where run_id = ${runId}`;
}

/** The steps of a run that a worker holds right now (shown as RUNNING). */
export async function runningSteps(sql: Sql, runId: number): Promise<number[]> {
  const rows = await sql<{ step: number }[]>`select step from task_queue where run_id = ${runId} and status = 1`;
  return rows.map((r) => r.step);
}

/** Ready rows whose wait deadline passed: the attempts to fail with a timeout. */
export async function expiredWaits(sql: Sql, limit: number): Promise<AttemptKey[]> {
  const rows = await sql<{ run_id: number; step: number; attempt: number }[]>`
    select run_id, step, attempt from task_queue
    where status = 0 and wait_deadline is not null and wait_deadline < now()
    order by wait_deadline limit ${limit}`;
  return rows.map((r) => ({ runId: r.run_id, step: r.step, attempt: r.attempt }));
}
