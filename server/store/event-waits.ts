// SQL for the run_event_waits table: the wait steps waiting for an event now
// (Wait.event), written by the batch that begins or ends each wait. A
// publisher reads it to find the runs to tell, whichever process owns them.

import { CHANNELS } from "./channels.js";
import { code, type Sql, type Tx } from "./database.js";
import { EventKind } from "./run-events.js";

export interface EventWaitChange {
  runId: number;
  step: number;
  namespace: string;
  name: string;
  /** true: the wait began; false: it ended. */
  on: boolean;
}

/**
 * Applies a batch's changes, in the batch's transaction (a wait is in the
 * table exactly when the event that began it is committed). A wait that
 * began and ended within the batch leaves nothing.
 */
export async function writeEventWaits(sql: Sql | Tx, changes: EventWaitChange[]): Promise<void> {
  const last = new Map<string, EventWaitChange>();
  for (const c of changes) last.set(`${c.runId}/${c.step}`, c);
  const begun = [...last.values()].filter((c) => c.on);
  const ended = [...last.values()].filter((c) => !c.on);
  if (ended.length)
    await sql`
      delete from run_event_waits w using unnest(${ended.map((c) => c.runId)}::bigint[], ${ended.map((c) => c.step)}::integer[]) as k(run_id, step)
      where w.run_id = k.run_id and w.step = k.step`;
  if (begun.length)
    await sql`
      insert into run_event_waits (run_id, step, namespace, name)
      select * from unnest(${begun.map((c) => c.runId)}::bigint[], ${begun.map((c) => c.step)}::integer[], ${begun.map((c) => c.namespace)}::text[], ${begun.map((c) => c.name)}::text[])
      on conflict (run_id, step) do nothing`;
}

/**
 * Tells every run waiting for event `name` in `namespace`: one inbox entry
 * per run (body: the event), in the caller's transaction, and a notification
 * to each owner. Returns how many runs were told.
 */
export async function sendEventToWaiters(sql: Sql | Tx, namespace: string, name: string, body: Uint8Array): Promise<number> {
  const rows = await sql<{ owner: string | null }[]>`
    with told as (
      insert into run_inbox (run_id, kind, body)
      select distinct w.run_id, ${code(sql, EventKind.event)}, ${Buffer.from(body)}::bytea
      from run_event_waits w where w.namespace = ${namespace} and w.name = ${name}
      returning run_id)
    select r.owner_id::text as owner from told join runs r on r.id = told.run_id`;
  for (const owner of new Set(rows.map((r) => r.owner ?? ""))) await sql`select pg_notify(${CHANNELS.inbox}, ${owner})`;
  return rows.length;
}
