// SQL for the run_events table: each run's append-only log of what happened
// to it after its start (results, cancel, pause, resume, timeout). Replaying
// it over the run's pipeline rebuilds the run.

import { base64, msToTimestamp, type Fragment, type Sql, type Tx } from "./database.js";

/** Event kinds stored in run_events.kind (1, the start, is implied by the run row). */
export const EventKind = { taskFinished: 2, cancel: 3, timeout: 4, pause: 5, resume: 6, wake: 7, signal: 8, event: 9 } as const;
export type EventKindCode = (typeof EventKind)[keyof typeof EventKind];

export interface StoredEvent {
  runId: number;
  seq: number;
  kind: EventKindCode;
  at: Date;
  step: number | null;
  body: Uint8Array | null;
}

export async function loadEvents(sql: Sql, runIds: number[]): Promise<StoredEvent[]> {
  if (runIds.length === 0) return [];
  const rows = await sql<{ run_id: number; seq: number; kind: EventKindCode; at: Date; step: number | null; body: Uint8Array | null }[]>`
    select run_id, seq, kind, at, step, body from run_events where run_id = any(${runIds}::bigint[]) order by run_id, seq`;
  return rows.map((r) => ({ runId: r.run_id, seq: r.seq, kind: r.kind, at: r.at, step: r.step, body: r.body?.length ? r.body : null }));
}

/** Appends events (a CTE of the batch statement). */
export function insertEvents(sql: Sql | Tx, events: StoredEvent[]): Fragment {
  const json = JSON.stringify(events.map((e) => ({ r: e.runId, q: e.seq, k: e.kind, at: e.at.getTime(), s: e.step, b: base64(e.body) })));
  return sql`
    insert into run_events (run_id, seq, kind, at, step, body)
    select k.r, k.q, k.k, ${msToTimestamp(sql, "k.at")}, k.s, decode(k.b, 'base64')
    from json_to_recordset(${json}::text::json) as k(r bigint, q integer, k smallint, at float8, s integer, b text)
    returning 1`;
}
