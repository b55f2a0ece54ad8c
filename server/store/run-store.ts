// SQL that reads runs and their event log (writes go through batch-write.ts,
// one statement per group commit).

import type { Sql, Tx } from "./database.js";

/** Event kinds stored in run_events.kind (1, the start, is implied by the run row). */
export const EventKind = { taskFinished: 2, cancel: 3, timeout: 4, pause: 5, resume: 6 } as const;
export type EventKindCode = (typeof EventKind)[keyof typeof EventKind];

export interface NewRun {
  uid: string;
  requestId: string | null;
  requestHash: Uint8Array | null;
  name: string;
  spec: Uint8Array;
  deadline: Date | null;
  taskCount: number;
}

export interface ExistingRun {
  id: number;
  uid: string;
  requestId: string;
  requestHash: Uint8Array | null;
}

export interface StoredEvent {
  runId: number;
  seq: number;
  kind: EventKindCode;
  at: Date;
  step: number | null;
  body: Uint8Array | null;
}

export interface RunRow {
  id: number;
  uid: string;
  request_id: string | null;
  name: string;
  state: number;
  spec: Uint8Array;
  created_at: Date;
  deadline: Date | null;
  finished_at: Date | null;
  outcome: Uint8Array | null;
  final_state: Uint8Array | null;
  task_count: number;
  owner_id: string | null;
}

const RUN_COLUMNS = "id, uid, request_id, name, state, spec, created_at, deadline, finished_at, outcome, final_state, task_count, owner_id";

export async function findByRequestIds(sql: Sql | Tx, requestIds: string[]): Promise<ExistingRun[]> {
  if (requestIds.length === 0) return [];
  const rows = await sql<{ id: number; uid: string; request_id: string; request_hash: Uint8Array | null }[]>`
    select id, uid, request_id, request_hash from runs where request_id = any(${requestIds}::text[])`;
  return rows.map((r) => ({ id: r.id, uid: r.uid, requestId: r.request_id, requestHash: r.request_hash }));
}

export interface RunStateChange {
  id: number;
  state: number;
  taskCount: number;
  /** Set for finished runs. */
  finishedAt?: Date;
  outcome?: Uint8Array;
  finalState?: Uint8Array;
}

/**
 * Ends an active run that `owner` holds, outside the batch statement (a run
 * whose log cannot be replayed). Returns false when the run was not active
 * or not held by `owner`.
 */
export async function endRun(sql: Sql | Tx, id: number, owner: string, state: number, outcome: Uint8Array): Promise<boolean> {
  const rows = await sql`
    update runs set state = ${state}, finished_at = now(), outcome = ${Buffer.from(outcome)}
    where id = ${id} and owner_id = ${owner}::uuid and state <= 3
    returning 1`;
  return rows.length === 1;
}

/** Ids of the runs with these uids that are active and owned by `owner`. */
export async function activeRunIdsByUids(sql: Sql, uids: string[], owner: string): Promise<number[]> {
  if (uids.length === 0) return [];
  const rows = await sql<{ id: number }[]>`select id from runs where uid = any(${uids}::uuid[]) and state <= 3 and owner_id = ${owner}::uuid`;
  return rows.map((r) => r.id);
}

export async function loadRunByUid(sql: Sql, uid: string): Promise<RunRow | undefined> {
  const rows = await sql<RunRow[]>`select ${sql.unsafe(RUN_COLUMNS)} from runs where uid = ${uid}::uuid`;
  return rows[0];
}

export async function loadRunsByUids(sql: Sql, uids: string[]): Promise<RunRow[]> {
  if (uids.length === 0) return [];
  const cols = sql.unsafe(RUN_COLUMNS.replace("spec, ", ""));
  return sql<RunRow[]>`select ${cols}, ''::bytea as spec from runs where uid = any(${uids}::uuid[])`;
}

export async function loadRunsByIds(sql: Sql, ids: number[]): Promise<RunRow[]> {
  if (ids.length === 0) return [];
  return sql<RunRow[]>`select ${sql.unsafe(RUN_COLUMNS)} from runs where id = any(${ids}::bigint[]) and state <= 3 order by id`;
}

export async function loadEvents(sql: Sql, runIds: number[]): Promise<StoredEvent[]> {
  if (runIds.length === 0) return [];
  const rows = await sql<{ run_id: number; seq: number; kind: EventKindCode; at: Date; step: number | null; body: Uint8Array | null }[]>`
    select run_id, seq, kind, at, step, body from run_events where run_id = any(${runIds}::bigint[]) order by run_id, seq`;
  return rows.map((r) => ({ runId: r.run_id, seq: r.seq, kind: r.kind, at: r.at, step: r.step, body: r.body?.length ? r.body : null }));
}

export interface ListFilter {
  states: number[];
  name: string;
  /** Keyset cursor: runs strictly older than (createdAt, id). */
  before?: { createdAt: Date; id: number };
  limit: number;
}

export async function listRuns(sql: Sql, f: ListFilter): Promise<RunRow[]> {
  const cols = sql.unsafe(RUN_COLUMNS.replace("spec, ", ""));
  const states = f.states.length ? sql`and state = any(${f.states}::smallint[])` : sql``;
  const name = f.name ? sql`and name = ${f.name}` : sql``;
  const before = f.before ? sql`and (created_at, id) < (${f.before.createdAt.toISOString()}::timestamptz, ${f.before.id})` : sql``;
  return sql<RunRow[]>`
    select ${cols}, ''::bytea as spec from runs
    where true ${states} ${name} ${before}
    order by created_at desc, id desc
    limit ${f.limit}`;
}
