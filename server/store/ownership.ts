// SQL for run ownership between server processes, and the owners' inboxes.

import type { Sql } from "./database.js";
import type { EventKindCode } from "./run-store.js";
import { CHANNELS } from "./channels.js";

export interface InboxEntry {
  id: number;
  runId: number;
  kind: EventKindCode;
  step: number | null;
  attempt: number | null;
  body: Uint8Array | null;
  receivedAt: Date;
}

/**
 * Takes over the active runs whose owner is not a live process (it died, or
 * the runs predate ownership). Returns their ids; each run goes to exactly one
 * process, however many try at once.
 *
 * Never the caller's own runs, even when its own heartbeat row looks dead: a
 * heartbeat write can take 13 s while PostgreSQL restarts, and a process that
 * "adopted" its own runs reloaded them from the log while their commits were in
 * flight, rewinding them (issue 10, item 11).
 */
export async function adoptOrphanRuns(sql: Sql, me: string, processTimeoutMs: number, limit: number): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    update runs set owner_id = ${me}::uuid
    where id in (
      select id from runs
      where state <= 3 and (owner_id is null or owner_id <> ${me}::uuid and owner_id not in (
        select id from server_processes where heartbeat_at > now() - ${processTimeoutMs} * interval '1 millisecond'))
      limit ${limit}
      for update skip locked)
    returning id`;
  return rows.map((r) => r.id);
}

/** The inbox of runs this process owns (read, not removed: the batch that applies an entry removes it). */
export async function readInbox(sql: Sql, me: string, limit: number): Promise<InboxEntry[]> {
  const rows = await sql<{ id: number; run_id: number; kind: EventKindCode; step: number | null; attempt: number | null; body: Uint8Array | null; received_at: Date }[]>`
    select i.id, i.run_id, i.kind, i.step, i.attempt, i.body, i.received_at
    from run_inbox i join runs r on r.id = i.run_id
    where r.owner_id = ${me}::uuid
    order by i.id limit ${limit}`;
  return rows.map((r) => ({ id: r.id, runId: r.run_id, kind: r.kind, step: r.step, attempt: r.attempt, body: r.body, receivedAt: r.received_at }));
}

/** Puts a control (cancel, pause, resume) in the inbox of the run's owner. Returns the entry's id. */
export async function sendControl(sql: Sql, runId: number, kind: EventKindCode, reason: string): Promise<number> {
  const [row] = await sql<{ id: number; owner: string | null }[]>`
    with e as (insert into run_inbox (run_id, kind, body) values (${runId}, ${kind}, ${Buffer.from(reason)}) returning id)
    select e.id, (select owner_id::text from runs where id = ${runId}) as owner from e`;
  await sql`select pg_notify(${CHANNELS.inbox}, ${row.owner ?? ""})`;
  return row.id;
}

export async function inboxEntryDone(sql: Sql, id: number): Promise<boolean> {
  const rows = await sql`select 1 from run_inbox where id = ${id}`;
  return rows.length === 0;
}

export async function ownerOf(sql: Sql, runId: number): Promise<string | null> {
  const [row] = await sql<{ owner_id: string | null }[]>`select owner_id from runs where id = ${runId}`;
  return row?.owner_id ?? null;
}

/** Which of these runs another process owns now. */
export async function runsOwnedElsewhere(sql: Sql, me: string, runIds: number[]): Promise<number[]> {
  if (runIds.length === 0) return [];
  const rows = await sql<{ id: number }[]>`select id from runs where id = any(${runIds}::bigint[]) and owner_id is distinct from ${me}::uuid`;
  return rows.map((r) => r.id);
}
