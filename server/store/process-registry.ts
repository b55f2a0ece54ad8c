// The server processes sharing a database. Each process refreshes its own row
// every few seconds; rows of silent processes tell the others that the tasks
// they held are lost. One row per process, not per worker: liveness of
// workers is tracked in memory (a hot per-worker row is what melts peers'
// databases at a few hundred workers).

import type { Fragment, Sql, Tx } from "./database.js";

/** The ids of the processes heard from within `timeoutMs`, as a query (for `in (...)`). */
export function liveProcessIds(sql: Sql | Tx, timeoutMs: number): Fragment {
  return sql`select id from server_processes where heartbeat_at > now() - ${timeoutMs} * interval '1 millisecond'`;
}

export async function registerProcess(sql: Sql, id: string, address: string): Promise<void> {
  await sql`insert into server_processes (id, address) values (${id}::uuid, ${address})`;
}

/** A task name and a queue ("" the default one) some worker serves. */
export type Served = [task: string, queue: string];

/** Refreshes this process's heartbeat and what its workers serve. */
export async function touchProcess(sql: Sql, id: string, serves: Served[] = []): Promise<void> {
  await sql`update server_processes set heartbeat_at = now(), serves = ${JSON.stringify(serves)}::text::jsonb where id = ${id}::uuid`;
}

/** What the workers of the other live processes serve. */
export async function servedElsewhere(sql: Sql, id: string, timeoutMs: number): Promise<Served[]> {
  const rows = await sql<{ task: string; queue: string }[]>`
    select distinct s->>0 as task, s->>1 as queue from server_processes, jsonb_array_elements(serves) as s
    where id <> ${id}::uuid and id in (${liveProcessIds(sql, timeoutMs)})`;
  return rows.map((r) => [r.task, r.queue]);
}

export async function unregisterProcess(sql: Sql, id: string): Promise<void> {
  await sql`delete from server_processes where id = ${id}::uuid`;
}

/** Forgets processes silent for longer than `olderThanMs` (long dead). */
export async function pruneProcesses(sql: Sql, olderThanMs: number): Promise<void> {
  await sql`delete from server_processes where heartbeat_at < now() - ${olderThanMs} * interval '1 millisecond'`;
}

/**
 * Forgets the processes registered at the same host and port as this one,
 * returning their ids (a data-modifying CTE: task-queue.ts's
 * reclaimPredecessors puts back what they held in the same statement).
 */
export function forgetPredecessors(sql: Sql | Tx, id: string, address: string): Fragment {
  return sql`delete from server_processes where address = ${address} and id <> ${id}::uuid returning id`;
}

/** How many other processes are alive (heard from within `timeoutMs`). */
export async function livePeerCount(sql: Sql, id: string, timeoutMs: number): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from server_processes
    where id <> ${id}::uuid and id in (${liveProcessIds(sql, timeoutMs)})`;
  return n;
}
