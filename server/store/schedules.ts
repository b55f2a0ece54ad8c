// SQL for the schedules table: one row per schedule, per namespace. The
// scheduler claims due rows here (FOR UPDATE SKIP LOCKED: one process per
// schedule at a time) and moves next_fire_at on in the same transaction as
// the fires it records (schedule-fires.ts).

import { inTransaction, type Sql, type Tx } from "./database.js";
import { CHANNELS } from "./channels.js";

export interface ScheduleRow {
  id: number;
  namespace: string;
  schedule_id: string;
  cron: string;
  time_zone: string;
  overlap: number;
  catchup_window_ms: number;
  pipeline: Uint8Array;
  run_name: string;
  run_timeout_ms: number;
  paused: boolean;
  next_fire_at: Date | null;
  last_fire_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** What a client sets (create, update). */
export interface ScheduleSettings {
  cron: string;
  timeZone: string;
  overlap: number;
  catchupWindowMs: number;
  pipeline: Uint8Array;
  runName: string;
  runTimeoutMs: number;
}

const COLUMNS =
  "id, namespace, schedule_id, cron, time_zone, overlap, catchup_window_ms, pipeline, run_name, run_timeout_ms, paused, next_fire_at, last_fire_at, created_at, updated_at";

function bytes(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Every scheduler looks again at once (a schedule created or changed may fire before the one its timer waits for). */
async function announce(sql: Sql | Tx): Promise<void> {
  await sql`select pg_notify(${CHANNELS.schedules}, '')`;
}

/**
 * Creates a schedule unless the id is taken or the namespace holds `limit`
 * schedules already: the checks and the insert under one advisory lock per
 * namespace, so two creates cannot both pass the limit (or take one id).
 */
export async function insertSchedule(
  sql: Sql,
  namespace: string,
  scheduleId: string,
  s: ScheduleSettings,
  nextFireAt: Date | null,
  limit: number,
): Promise<ScheduleRow | "exists" | "full"> {
  return inTransaction(sql, async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('pipewright schedules ' || ${namespace}))`;
    if (await getSchedule(tx, namespace, scheduleId)) return "exists" as const;
    const [{ count }] = await tx<{ count: number }[]>`
      select count(*)::int as count from (select 1 from schedules where namespace = ${namespace} limit ${limit}) x`;
    if (count >= limit) return "full" as const;
    const [row] = await tx<ScheduleRow[]>`
      insert into schedules (namespace, schedule_id, cron, time_zone, overlap, catchup_window_ms, pipeline, run_name, run_timeout_ms, next_fire_at)
      values (${namespace}, ${scheduleId}, ${s.cron}, ${s.timeZone}, ${s.overlap}, ${s.catchupWindowMs}, ${bytes(s.pipeline)}, ${s.runName}, ${s.runTimeoutMs}, ${nextFireAt})
      returning ${tx.unsafe(COLUMNS)}`;
    await announce(tx);
    return row;
  });
}

export async function getSchedule(sql: Sql | Tx, namespace: string, scheduleId: string, lock = false): Promise<ScheduleRow | undefined> {
  const [row] = await sql<ScheduleRow[]>`
    select ${sql.unsafe(COLUMNS)} from schedules where namespace = ${namespace} and schedule_id = ${scheduleId} ${lock ? sql`for update` : sql``}`;
  return row;
}

export async function getScheduleById(sql: Sql | Tx, id: number): Promise<ScheduleRow | undefined> {
  const [row] = await sql<ScheduleRow[]>`select ${sql.unsafe(COLUMNS)} from schedules where id = ${id}`;
  return row;
}

/** A page of the namespace's schedules by schedule_id, after `after`. */
export async function listSchedules(sql: Sql, namespace: string, after: string, limit: number): Promise<ScheduleRow[]> {
  return sql<ScheduleRow[]>`
    select ${sql.unsafe(COLUMNS)} from schedules where namespace = ${namespace} and schedule_id > ${after} order by schedule_id limit ${limit}`;
}

/**
 * Replaces the settings; `nextFireAt` undefined keeps the next fire time (and
 * a paused schedule keeps none: resuming counts it). Undefined: no such schedule.
 */
export async function updateSchedule(
  sql: Sql,
  namespace: string,
  scheduleId: string,
  s: ScheduleSettings,
  nextFireAt: Date | null | undefined,
): Promise<ScheduleRow | undefined> {
  return inTransaction(sql, async (tx) => {
    const current = await getSchedule(tx, namespace, scheduleId, true);
    if (!current) return undefined;
    const next = current.paused || nextFireAt === undefined ? current.next_fire_at : nextFireAt;
    const [row] = await tx<ScheduleRow[]>`
      update schedules set cron = ${s.cron}, time_zone = ${s.timeZone}, overlap = ${s.overlap}, catchup_window_ms = ${s.catchupWindowMs},
        pipeline = ${bytes(s.pipeline)}, run_name = ${s.runName}, run_timeout_ms = ${s.runTimeoutMs}, next_fire_at = ${next}, updated_at = now()
      where id = ${current.id}
      returning ${tx.unsafe(COLUMNS)}`;
    await announce(tx);
    return row;
  });
}

/** Deletes a schedule (its fires go with it). False: no such schedule. */
export async function deleteSchedule(sql: Sql, namespace: string, scheduleId: string): Promise<boolean> {
  const rows = await sql`delete from schedules where namespace = ${namespace} and schedule_id = ${scheduleId} returning id`;
  return rows.length > 0;
}

/** Pauses (next fire cleared) or resumes (next fire as given). Undefined: no such schedule. */
export async function setPaused(sql: Sql, namespace: string, scheduleId: string, paused: boolean, nextFireAt: Date | null): Promise<ScheduleRow | undefined> {
  return inTransaction(sql, async (tx) => {
    const [row] = await tx<ScheduleRow[]>`
      update schedules set paused = ${paused}, next_fire_at = ${nextFireAt}, updated_at = now()
      where namespace = ${namespace} and schedule_id = ${scheduleId}
      returning ${tx.unsafe(COLUMNS)}`;
    if (row) await announce(tx);
    return row;
  });
}

/** Due schedules (next fire at or before `now`, not paused), locked for the caller's transaction; those another process holds are passed over. */
export async function claimDueSchedules(tx: Tx, now: Date, limit: number): Promise<ScheduleRow[]> {
  return tx<ScheduleRow[]>`
    select ${tx.unsafe(COLUMNS)} from schedules
    where not paused and next_fire_at is not null and next_fire_at <= ${now}
    order by next_fire_at limit ${limit}
    for update skip locked`;
}

/** After the fires are recorded: the next fire time, and the latest fire's time when there was one. */
export async function advanceSchedule(tx: Tx, id: number, nextFireAt: Date | null, lastFireAt: Date | null): Promise<void> {
  await tx`update schedules set next_fire_at = ${nextFireAt}, last_fire_at = greatest(last_fire_at, ${lastFireAt}) where id = ${id}`;
}

/** The earliest next fire of any running schedule (the scheduler's one timer). */
export async function earliestNextFire(sql: Sql): Promise<Date | undefined> {
  const [row] = await sql<{ at: Date | null }[]>`select min(next_fire_at) as at from schedules where not paused and next_fire_at is not null`;
  return row?.at ?? undefined;
}
