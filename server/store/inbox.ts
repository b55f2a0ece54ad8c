// SQL for the run_inbox table: what one server process received for a run
// another process owns (a worker's result, a cancel, pause or resume), kept
// until the owner's batch applies it and removes it.

import { CHANNELS } from "./channels.js";
import { byteaArray, code, type Fragment, type Sql, type Tx } from "./database.js";
import { EventKind, type EventKindCode } from "./run-events.js";
import type { AttemptKey } from "./task-queue.js";

export interface InboxEntry {
  id: number;
  runId: number;
  kind: EventKindCode;
  step: number | null;
  attempt: number | null;
  body: Uint8Array | null;
  receivedAt: Date;
}

/** The inbox of runs this process owns (read, not removed: the batch that applies an entry removes it). */
export async function readInbox(sql: Sql, me: string, limit: number): Promise<InboxEntry[]> {
  const rows = await sql<
    { id: number; run_id: number; kind: EventKindCode; step: number | null; attempt: number | null; body: Uint8Array | null; received_at: Date }[]
  >`
    select i.id, i.run_id, i.kind, i.step, i.attempt, i.body, i.received_at
    from run_inbox i join runs r on r.id = i.run_id
    where r.owner_id = ${me}::uuid
    order by i.id limit ${limit}`;
  return rows.map((r) => ({ id: r.id, runId: r.run_id, kind: r.kind, step: r.step, attempt: r.attempt, body: r.body, receivedAt: r.received_at }));
}

/** Puts a control (cancel, pause, resume, signal) in the inbox of the run's owner. Returns the entry's id. */
export async function sendControl(sql: Sql, runId: number, kind: EventKindCode, body: Uint8Array): Promise<number> {
  const [row] = await sql<{ id: number; owner: string | null }[]>`
    with e as (insert into run_inbox (run_id, kind, body) values (${runId}, ${kind}, ${Buffer.from(body)}) returning id)
    select e.id, (select owner_id::text from runs where id = ${runId}) as owner from e`;
  await sql`select pg_notify(${CHANNELS.inbox}, ${row.owner ?? ""})`;
  return row.id;
}

/** Whether the owner applied (and so removed) this entry. */
export async function inboxEntryDone(sql: Sql, id: number): Promise<boolean> {
  const rows = await sql`select 1 from run_inbox where id = ${id}`;
  return rows.length === 0;
}

/**
 * Puts results in their runs' owners' inboxes: those of `fenced`, a CTE of
 * the same statement naming the attempts that were current (run_id, step,
 * attempt). Returns run_id of each entry.
 */
export function insertResults(sql: Sql | Tx, fenced: string, results: { key: AttemptKey; body: Uint8Array; receivedAt: Date }[]): Fragment {
  return sql`
    insert into run_inbox (run_id, kind, step, attempt, body, received_at)
    select d.run_id, ${code(sql, EventKind.taskFinished)}, d.step, d.attempt, k.body, k.received_at
    from ${sql.unsafe(fenced)} d join unnest(
      ${results.map((x) => x.key.runId)}::bigint[], ${results.map((x) => x.key.step)}::integer[], ${results.map((x) => x.key.attempt)}::integer[],
      ${byteaArray(
        sql,
        results.map((x) => x.body),
      )}::bytea[], ${results.map((x) => x.receivedAt.toISOString())}::timestamptz[]
    ) as k(run_id, step, attempt, body, received_at) on k.run_id = d.run_id and k.step = d.step and k.attempt = d.attempt
    returning run_id`;
}

/** Removes the entries a batch applied. */
export function deleteEntries(sql: Sql | Tx, ids: number[]): Fragment {
  return sql`delete from run_inbox where id = any(${ids}::bigint[]) returning 1`;
}
