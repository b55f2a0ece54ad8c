// SQL of the events table (migration 000017): published events, stored once
// per (namespace, event_id), marked triggered once their triggers' runs are
// started, deleted past the retention.

import type { Sql, Tx } from "./database.js";

/** A run an event started through a trigger, as stored in events.runs. */
export interface StoredTriggeredRun {
  trigger_id: string;
  run_id: string;
  error: string;
}

export interface EventRow {
  /** The row's internal id (keyset paging). */
  id: number;
  namespace: string;
  eventId: string;
  name: string;
  payload: Uint8Array;
  publishedAt: Date;
  triggeredAt: Date | null;
  runs: StoredTriggeredRun[];
}

interface Row {
  id: number;
  namespace: string;
  event_id: string;
  name: string;
  payload: Uint8Array;
  published_at: Date;
  triggered_at: Date | null;
  runs: StoredTriggeredRun[];
}

const COLUMNS = "id, namespace, event_id, name, payload, published_at, triggered_at, runs";

function fromRow(r: Row): EventRow {
  return {
    id: r.id,
    namespace: r.namespace,
    eventId: r.event_id,
    name: r.name,
    payload: r.payload,
    publishedAt: r.published_at,
    triggeredAt: r.triggered_at,
    runs: r.runs,
  };
}

/**
 * Stores an event unless its (namespace, event_id) is stored already.
 * Returns the stored row and whether this call inserted it.
 */
export async function insertEvent(
  sql: Sql,
  e: { namespace: string; eventId: string; name: string; payload: Uint8Array },
): Promise<{ row: EventRow; inserted: boolean }> {
  const inserted = await sql<Row[]>`
    insert into events (namespace, event_id, name, payload) values (${e.namespace}, ${e.eventId}, ${e.name}, ${e.payload})
    on conflict (namespace, event_id) do nothing
    returning ${sql.unsafe(COLUMNS)}`;
  if (inserted.length) return { row: fromRow(inserted[0]), inserted: true };
  const [existing] = await sql<Row[]>`select ${sql.unsafe(COLUMNS)} from events where namespace = ${e.namespace} and event_id = ${e.eventId}`;
  // Deleted between the two statements (retention of a very old id): store it again.
  if (!existing) return insertEvent(sql, e);
  return { row: fromRow(existing), inserted: false };
}

/** Records the runs an event started; only the first record counts (a repeat keeps the first). */
export async function markTriggered(sql: Sql | Tx, id: number, runs: StoredTriggeredRun[]): Promise<EventRow | undefined> {
  const rows = await sql<Row[]>`
    update events set triggered_at = now(), runs = ${sql.json(runs as never)}
    where id = ${id} and triggered_at is null
    returning ${sql.unsafe(COLUMNS)}`;
  return rows.length ? fromRow(rows[0]) : undefined;
}

/** Re-reads one event by its internal id. */
export async function loadEventById(sql: Sql | Tx, id: number): Promise<EventRow | undefined> {
  const rows = await sql<Row[]>`select ${sql.unsafe(COLUMNS)} from events where id = ${id}`;
  return rows.length ? fromRow(rows[0]) : undefined;
}

/**
 * Claims up to `limit` events stored more than `olderThanMs` ago and still not
 * triggered (their publisher died in between), locked FOR UPDATE SKIP LOCKED in
 * `tx`: processes sweeping at once take different events and never wait.
 */
export async function claimUntriggered(tx: Tx, olderThanMs: number, limit: number): Promise<EventRow[]> {
  const rows = await tx<Row[]>`
    select ${tx.unsafe(COLUMNS)} from events
    where triggered_at is null and published_at < now() - ${olderThanMs} * interval '1 millisecond'
    order by published_at limit ${limit}
    for update skip locked`;
  return rows.map(fromRow);
}

/**
 * A page of a namespace's events, newest first, with internal ids below
 * `beforeId` (0: the first page). Payloads (up to 32 MiB each) are read only
 * while the page's total stays under `budgetBytes`: the rows past it come back
 * with a null payload, for the caller to end the page before them (the first
 * row always has its payload, whatever its size). Sizes come from octet_length, which reads no
 * TOASTed payload.
 */
export async function listEvents(
  sql: Sql,
  f: { namespace: string; name: string; beforeId: number; limit: number; budgetBytes: number },
): Promise<(Omit<EventRow, "payload"> & { payload: Uint8Array | null })[]> {
  const rows = await sql<(Omit<Row, "payload"> & { payload: Uint8Array | null })[]>`
    select id, namespace, event_id, name, case when upto <= ${f.budgetBytes} or upto = size then payload end as payload, published_at, triggered_at, runs
    from (
      select *, octet_length(payload) as size, sum(octet_length(payload)) over (order by id desc) as upto from events
      where namespace = ${f.namespace} ${f.beforeId > 0 ? sql`and id < ${f.beforeId}` : sql``} ${f.name ? sql`and name = ${f.name}` : sql``}
      order by id desc limit ${f.limit}
    ) page
    order by id desc`;
  return rows.map((r) => ({ ...fromRow(r as Row), payload: r.payload }));
}

/** Deletes up to `limit` events published more than `hours` ago; returns how many went. */
export async function deleteEventsBefore(sql: Sql, hours: number, limit: number): Promise<number> {
  const rows = await sql`
    delete from events where id in (
      select id from events where published_at < now() - ${hours} * interval '1 hour' order by published_at limit ${limit} for update skip locked)
    returning 1`;
  return rows.length;
}
