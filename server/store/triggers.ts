// SQL of the triggers table (migration 000017): a namespace's triggers, each
// kept whole as the protobuf bytes of its Trigger message (`spec`), with the
// columns the lookups need beside it.

import type { Sql } from "./database.js";

export interface TriggerRow {
  triggerId: string;
  eventName: string;
  spec: Uint8Array;
  paused: boolean;
  createdAt: Date;
}

interface Row {
  trigger_id: string;
  event_name: string;
  spec: Uint8Array;
  paused: boolean;
  created_at: Date;
}

function fromRow(r: Row): TriggerRow {
  return { triggerId: r.trigger_id, eventName: r.event_name, spec: r.spec, paused: r.paused, createdAt: r.created_at };
}

/**
 * Inserts a trigger unless the namespace already holds `limit` of them.
 * "exists": the trigger_id is taken; "full": the limit is reached. The count
 * and the insert run under a per-namespace advisory lock, so two creates at
 * once cannot both pass the limit.
 */
export async function insertTrigger(
  sql: Sql,
  namespace: string,
  t: { triggerId: string; eventName: string; spec: Uint8Array },
  limit: number,
): Promise<TriggerRow | "exists" | "full"> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('pipewright triggers ' || ${namespace}))`;
    const [{ n }] = await tx<{ n: number }[]>`select count(*)::int as n from triggers where namespace = ${namespace}`;
    if (n >= limit) return "full" as const;
    const rows = await tx<Row[]>`
      insert into triggers (namespace, trigger_id, event_name, spec)
      values (${namespace}, ${t.triggerId}, ${t.eventName}, ${t.spec})
      on conflict (namespace, trigger_id) do nothing
      returning trigger_id, event_name, spec, paused, created_at`;
    return rows.length ? fromRow(rows[0]) : ("exists" as const);
  });
}

export async function loadTrigger(sql: Sql, namespace: string, triggerId: string): Promise<TriggerRow | undefined> {
  const rows = await sql<Row[]>`
    select trigger_id, event_name, spec, paused, created_at from triggers where namespace = ${namespace} and trigger_id = ${triggerId}`;
  return rows.length ? fromRow(rows[0]) : undefined;
}

/**
 * A page of the namespace's triggers by trigger_id, after `after` (exclusive;
 * "" for the first page). Specs are read only while the page's total stays
 * under `budgetBytes`; the rows past it come back with a null spec, for the
 * caller to end the page before them (the first row always has its spec).
 */
export async function listTriggers(
  sql: Sql,
  f: { namespace: string; after: string; limit: number; budgetBytes: number },
): Promise<(Omit<TriggerRow, "spec"> & { spec: Uint8Array | null })[]> {
  const rows = await sql<(Omit<Row, "spec"> & { spec: Uint8Array | null })[]>`
    select trigger_id, event_name, case when upto <= ${f.budgetBytes} or upto = size then spec end as spec, paused, created_at
    from (
      select *, octet_length(spec) as size, sum(octet_length(spec)) over (order by trigger_id collate "C") as upto from triggers
      where namespace = ${f.namespace} and trigger_id collate "C" > ${f.after}
      order by trigger_id collate "C" limit ${f.limit}
    ) page
    order by trigger_id collate "C"`;
  return rows.map((r) => ({ ...fromRow(r as Row), spec: r.spec }));
}

/**
 * The unpaused triggers of an event name in a namespace (the ones an event of
 * that name starts), by trigger_id after `after`, at most `limit`: callers
 * take them a batch at a time, so that memory stays bounded however many
 * triggers a name has.
 */
export async function activeTriggersFor(sql: Sql, namespace: string, eventName: string, after: string, limit: number): Promise<TriggerRow[]> {
  const rows = await sql<Row[]>`
    select trigger_id, event_name, spec, paused, created_at from triggers
    where namespace = ${namespace} and event_name = ${eventName} and not paused and trigger_id collate "C" > ${after}
    order by trigger_id collate "C" limit ${limit}`;
  return rows.map(fromRow);
}

/** Whether a trigger was deleted. */
export async function deleteTrigger(sql: Sql, namespace: string, triggerId: string): Promise<boolean> {
  const rows = await sql`delete from triggers where namespace = ${namespace} and trigger_id = ${triggerId} returning 1`;
  return rows.length > 0;
}

/** Pauses or resumes a trigger; undefined when there is none. */
export async function setTriggerPaused(sql: Sql, namespace: string, triggerId: string, paused: boolean): Promise<TriggerRow | undefined> {
  const rows = await sql<Row[]>`
    update triggers set paused = ${paused} where namespace = ${namespace} and trigger_id = ${triggerId}
    returning trigger_id, event_name, spec, paused, created_at`;
  return rows.length ? fromRow(rows[0]) : undefined;
}
