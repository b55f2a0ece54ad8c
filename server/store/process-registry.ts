// The server processes sharing a database. Each process refreshes its own row
// every few seconds; rows of silent processes tell the others that the tasks
// they held are lost. One row per process, not per worker: liveness of
// workers is tracked in memory (a hot per-worker row is what melts peers'
// databases at a few hundred workers).

import type { Sql } from "./database.js";

export async function registerProcess(sql: Sql, id: string, address: string): Promise<void> {
  await sql`insert into server_processes (id, address) values (${id}::uuid, ${address})`;
}

export async function touchProcess(sql: Sql, id: string): Promise<void> {
  await sql`update server_processes set heartbeat_at = now() where id = ${id}::uuid`;
}

export async function unregisterProcess(sql: Sql, id: string): Promise<void> {
  await sql`delete from server_processes where id = ${id}::uuid`;
}

/** Forgets processes silent for longer than `olderThanMs` (long dead). */
export async function pruneProcesses(sql: Sql, olderThanMs: number): Promise<void> {
  await sql`delete from server_processes where heartbeat_at < now() - ${olderThanMs} * interval '1 millisecond'`;
}
