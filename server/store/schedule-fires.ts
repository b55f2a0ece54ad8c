// SQL for the schedule_fires table: one row per fire of a schedule, keyed by
// (schedule, fire time). A fire is recorded (insert ... on conflict do
// nothing: whoever records it first, it is recorded once) before its run is
// submitted; a row left PENDING by a crash is picked up again by any process
// (claimStalePendingFires) and submitted with the same request id, which finds
// the run if the first submit did happen.

import { RunState } from "@pipewright/protocol";
import { code, type Sql, type Tx } from "./database.js";

/** pipewright.v1.ScheduleFireOutcome as stored. */
export const FIRE_PENDING = 1;
export const FIRE_STARTED = 2;
export const FIRE_SKIPPED = 3;

/** Fires kept per schedule (the newest): bounds the history and the look for active runs. */
export const FIRES_KEPT = 1000;

export interface FireRow {
  schedule_id: number;
  fire_at: Date;
  outcome: number;
  request_id: string;
  run_uid: string | null;
  reason: string;
  triggered: boolean;
  cancel_previous: boolean;
}

export interface NewFire {
  fireAt: Date;
  outcome: typeof FIRE_PENDING | typeof FIRE_SKIPPED;
  requestId: string;
  reason: string;
  triggered: boolean;
  cancelPrevious: boolean;
}

const COLUMNS = "schedule_id, fire_at, outcome, request_id, run_uid, reason, triggered, cancel_previous";

/** Records fires (booleans travel as 0/1: postgres.js 3.4 sends a boolean[] parameter PostgreSQL cannot cast); those already recorded (same time or request id) are left as they are. Returns the rows this call inserted. */
export async function recordFires(tx: Tx, schedulePk: number, fires: NewFire[]): Promise<FireRow[]> {
  if (fires.length === 0) return [];
  return tx<FireRow[]>`
    insert into schedule_fires (schedule_id, fire_at, outcome, request_id, reason, triggered, cancel_previous)
    select ${schedulePk}, at, outcome, request_id, reason, triggered = 1, cancel_previous = 1 from unnest(
      ${fires.map((f) => f.fireAt.toISOString())}::timestamptz[], ${fires.map((f) => f.outcome)}::smallint[], ${fires.map((f) => f.requestId)}::text[],
      ${fires.map((f) => f.reason)}::text[], ${fires.map((f) => Number(f.triggered))}::int[], ${fires.map((f) => Number(f.cancelPrevious))}::int[])
      as f (at, outcome, request_id, reason, triggered, cancel_previous)
    on conflict do nothing
    returning ${tx.unsafe(COLUMNS)}`;
}

/**
 * The schedule's runs still active (running, paused, cancelling), newest
 * first, and its fires still pending (their runs about to start, named
 * "pending:<request id>"): the overlap policy's "previous run".
 */
export async function activeRunsOf(sql: Sql | Tx, schedulePk: number): Promise<string[]> {
  const rows = await sql<{ uid: string | null; request_id: string }[]>`
    select f.run_uid as uid, f.request_id from schedule_fires f left join runs r on r.uid = f.run_uid
    where f.schedule_id = ${schedulePk} and (f.outcome = ${code(sql, FIRE_PENDING)} or (f.outcome = ${code(sql, FIRE_STARTED)} and r.state <= ${code(sql, RunState.CANCELLING)}))
    order by f.fire_at desc`;
  return rows.map((r) => r.uid ?? `pending:${r.request_id}`);
}

/** The run a pending fire started. */
export async function completeFire(sql: Sql, schedulePk: number, fireAt: Date, runUid: string): Promise<void> {
  await sql`
    update schedule_fires set outcome = ${code(sql, FIRE_STARTED)}, run_uid = ${runUid}
    where schedule_id = ${schedulePk} and fire_at = ${fireAt} and outcome = ${code(sql, FIRE_PENDING)}`;
}

/** A pending fire that could not start its run (the schedule's pipeline refused): skipped with why. */
export async function failFire(sql: Sql, schedulePk: number, fireAt: Date, reason: string): Promise<void> {
  await sql`
    update schedule_fires set outcome = ${code(sql, FIRE_SKIPPED)}, reason = ${reason.slice(0, 1000)}
    where schedule_id = ${schedulePk} and fire_at = ${fireAt} and outcome = ${code(sql, FIRE_PENDING)}`;
}

/**
 * Pending fires recorded (or last picked up) more than `staleMs` ago: their
 * submit did not happen or did not finish (the process died, or it is slow).
 * Each is leased to the caller for another `staleMs` (touched_at), so one
 * process retries it at a time; two retrying at once would still make one run.
 */
export async function claimStalePendingFires(sql: Sql, staleMs: number, limit: number): Promise<FireRow[]> {
  return sql<FireRow[]>`
    update schedule_fires f set touched_at = now()
    from (
      select schedule_id, fire_at from schedule_fires
      where outcome = ${code(sql, FIRE_PENDING)} and touched_at < now() - make_interval(secs => ${staleMs / 1000})
      order by touched_at limit ${limit}
      for update skip locked
    ) stale
    where f.schedule_id = stale.schedule_id and f.fire_at = stale.fire_at
    returning ${sql.unsafe(
      COLUMNS.split(", ")
        .map((c) => `f.${c}`)
        .join(", "),
    )}`;
}

/** A fire of TriggerSchedule repeated with the same request id. */
export async function fireByRequestId(sql: Sql | Tx, schedulePk: number, requestId: string): Promise<FireRow | undefined> {
  const [row] = await sql<FireRow[]>`select ${sql.unsafe(COLUMNS)} from schedule_fires where schedule_id = ${schedulePk} and request_id = ${requestId}`;
  return row;
}

export async function getFire(sql: Sql | Tx, schedulePk: number, fireAt: Date): Promise<FireRow | undefined> {
  const [row] = await sql<FireRow[]>`select ${sql.unsafe(COLUMNS)} from schedule_fires where schedule_id = ${schedulePk} and fire_at = ${fireAt}`;
  return row;
}

/** A page of fires, newest first, older than `before`. */
export async function listFires(sql: Sql, schedulePk: number, before: Date | undefined, limit: number): Promise<FireRow[]> {
  return sql<FireRow[]>`
    select ${sql.unsafe(COLUMNS)} from schedule_fires
    where schedule_id = ${schedulePk} ${before ? sql`and fire_at < ${before}` : sql``}
    order by fire_at desc limit ${limit}`;
}

/** Deletes the schedule's fires past the newest FIRES_KEPT (pending ones stay: their runs are still to start). */
export async function pruneFires(tx: Tx, schedulePk: number): Promise<void> {
  await tx`
    delete from schedule_fires where schedule_id = ${schedulePk} and outcome <> ${code(tx, FIRE_PENDING)} and fire_at < (
      select fire_at from schedule_fires where schedule_id = ${schedulePk} order by fire_at desc offset ${FIRES_KEPT - 1} limit 1)`;
}
