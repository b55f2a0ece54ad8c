// SQL for the runs table: one row per run, its pipeline, state, outcome and
// owning process. Reads, takeover between processes, and the fragments the
// batch statement (batch-write.ts) composes (runs inserted, updated, owner
// checked).

import { RunState } from "@pipewright/protocol";
import { base64, code, msToTimestamp, type Fragment, type Sql, type Tx } from "./database.js";
import { CHANNELS } from "./channels.js";
import { liveProcessIds } from "./process-registry.js";

/** Runs not finished (running, paused, cancelling), in a WHERE clause: the runs_active and runs_owner indexes say the same. */
function active(sql: Sql | Tx): Fragment {
  return sql`state <= ${code(sql, RunState.CANCELLING)}`;
}

export interface NewRun {
  uid: string;
  namespace: string;
  /** A delayed start; null: it started when created. */
  startAt: Date | null;
  requestId: string | null;
  requestHash: Uint8Array | null;
  name: string;
  spec: Uint8Array;
  deadline: Date | null;
  taskCount: number;
  /** W3C trace context of the run's span (server/observe/tracing.ts); unset: the run is not traced. */
  traceparent?: string;
  tracestate?: string;
}

/** A new run as the batch writes it: with its state once its start was applied (it may even be finished). */
export interface NewRunRow extends NewRun {
  createdAt: Date;
  state: number;
  finishedAt: Date | null;
  outcome: Uint8Array | null;
  finalState: Uint8Array | null;
}

export interface ExistingRun {
  id: number;
  uid: string;
  namespace: string;
  requestId: string;
  requestHash: Uint8Array | null;
}

export interface RunRow {
  id: number;
  uid: string;
  namespace: string;
  start_at: Date | null;
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
  traceparent: string | null;
  tracestate: string | null;
}

const RUN_COLUMNS =
  "id, uid, namespace, start_at, request_id, name, state, spec, created_at, deadline, finished_at, outcome, final_state, task_count, owner_id, traceparent, tracestate";

/** The runs that already hold these request ids, each in its namespace. */
export async function findByRequestIds(sql: Sql | Tx, keys: { namespace: string; requestId: string }[]): Promise<ExistingRun[]> {
  if (keys.length === 0) return [];
  const rows = await sql<{ id: number; uid: string; namespace: string; request_id: string; request_hash: Uint8Array | null }[]>`
    select id, uid, namespace, request_id, request_hash from runs
    where (namespace, request_id) in (select * from unnest(${keys.map((k) => k.namespace)}::text[], ${keys.map((k) => k.requestId)}::text[]))`;
  return rows.map((r) => ({ id: r.id, uid: r.uid, namespace: r.namespace, requestId: r.request_id, requestHash: r.request_hash }));
}

/** The namespaces of the runs with these uids (unknown uids are left out). */
export async function namespacesOf(sql: Sql, uids: string[]): Promise<Map<string, string>> {
  if (uids.length === 0) return new Map();
  const rows = await sql<{ uid: string; namespace: string }[]>`select uid::text, namespace from runs where uid = any(${uids}::uuid[])`;
  return new Map(rows.map((r) => [r.uid, r.namespace]));
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
    where id = ${id} and owner_id = ${owner}::uuid and ${active(sql)}
    returning 1`;
  return rows.length === 1;
}

/** Ids of the runs with these uids that are active and owned by `owner`. */
export async function activeRunIdsByUids(sql: Sql, uids: string[], owner: string): Promise<number[]> {
  if (uids.length === 0) return [];
  const rows = await sql<{ id: number }[]>`select id from runs where uid = any(${uids}::uuid[]) and ${active(sql)} and owner_id = ${owner}::uuid`;
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
  return sql<RunRow[]>`select ${sql.unsafe(RUN_COLUMNS)} from runs where id = any(${ids}::bigint[]) and ${active(sql)} order by id`;
}

export interface ListFilter {
  /** Only this namespace's runs; unset: every namespace. */
  namespace?: string;
  /** Only runs whose delayed start is still ahead. */
  scheduled?: boolean;
  states: number[];
  name: string;
  /** Keyset cursor: runs strictly older than (createdAt, id). */
  before?: { createdAt: Date; id: number };
  limit: number;
}

/**
 * How many runs of `namespace` are in each of `states`, each counted up to
 * `limit`. One subquery per state with the state written as a literal: the
 * planner then sees how many runs each state holds and walks
 * runs_namespace_state for a rare one (stopping at the cap), where with the
 * state as a parameter it scanned the whole table for each (460 ms with a
 * million runs, against 3 ms).
 */
export async function countRunsByState(sql: Sql, namespace: string, states: number[], limit: number): Promise<Map<number, number>> {
  if (states.length === 0) return new Map();
  const counts = states.map((state, i) => {
    const count = sql`(select count(*) from (select 1 from runs where namespace = ${namespace} and state = ${code(sql, state)} limit ${limit}) x)::int`;
    return i === 0 ? sql`${count} as ${sql(`s${state}`)}` : sql`, ${count} as ${sql(`s${state}`)}`;
  });
  const [row] = await sql<Record<string, number>[]>`select ${counts}`;
  return new Map(states.map((state) => [state, row[`s${state}`]]));
}

/** How many active runs of `namespace` have their delayed start still ahead, up to `limit` (runs_scheduled). */
export async function countScheduledRuns(sql: Sql, namespace: string, limit: number): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from (select 1 from runs where namespace = ${namespace} and start_at > now() and ${active(sql)} limit ${limit}) x`;
  return row.count;
}

export async function listRuns(sql: Sql, f: ListFilter): Promise<RunRow[]> {
  const cols = sql.unsafe(RUN_COLUMNS.replace("spec, ", ""));
  const states = f.states.length ? sql`and state = any(${f.states}::smallint[])` : sql``;
  const name = f.name ? sql`and name = ${f.name}` : sql``;
  const namespace = f.namespace !== undefined ? sql`and namespace = ${f.namespace}` : sql``;
  const scheduled = f.scheduled ? sql`and start_at > now() and ${active(sql)}` : sql``;
  const before = f.before ? sql`and (created_at, id) < (${f.before.createdAt.toISOString()}::timestamptz, ${f.before.id})` : sql``;
  return sql<RunRow[]>`
    select ${cols}, ''::bytea as spec from runs
    where true ${namespace} ${scheduled} ${states} ${name} ${before}
    order by created_at desc, id desc
    limit ${f.limit}`;
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
export async function adoptOrphanRuns(sql: Sql, me: string, processTimeoutMs: number, limit: number): Promise<{ id: number; parked: boolean }[]> {
  const rows = await sql<{ id: number; parked: boolean }[]>`
    update runs set owner_id = ${me}::uuid
    where id in (
      select id from runs
      where ${active(sql)} and (owner_id is null or owner_id <> ${me}::uuid and owner_id not in (${liveProcessIds(sql, processTimeoutMs)}))
      limit ${limit}
      for update skip locked)
    returning id, parked`;
  return rows.map((r) => ({ id: r.id, parked: r.parked }));
}

/**
 * Parks runs this process owns (see migration 000015): they leave its memory
 * and come back by `wake_at` or through the inbox. Returns the ids parked
 * (a run another process took over meanwhile is not).
 */
export async function parkRuns(sql: Sql, me: string, runs: { id: number; wakeAt: number | undefined }[]): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    update runs set parked = true, wake_at = ${msToTimestamp(sql, "k.w")}
    from json_to_recordset(${JSON.stringify(runs.map((r) => ({ i: r.id, w: r.wakeAt ?? null })))}::text::json) as k(i bigint, w float8)
    where runs.id = k.i and runs.owner_id = ${me}::uuid and ${active(sql)}
    returning runs.id`;
  return rows.map((r) => r.id);
}

/** Unparks these runs of this process (to be loaded now); returns those that were parked here. */
export async function unparkRuns(sql: Sql, me: string, ids: number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await sql<{ id: number }[]>`
    update runs set parked = false, wake_at = null
    where id = any(${ids}::bigint[]) and owner_id = ${me}::uuid and parked
    returning id`;
  return rows.map((r) => r.id);
}

/** Unparks this process's parked run of this uid (to be loaded now), if it is one; returns its id. */
export async function unparkByUid(sql: Sql, me: string, uid: string): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    update runs set parked = false, wake_at = null
    where uid = ${uid}::uuid and owner_id = ${me}::uuid and parked
    returning id`;
  return rows.map((r) => r.id);
}

/** Unparks up to `limit` runs of this process due by `horizonMs` from now (the database's clock); returns their ids. */
export async function unparkDue(sql: Sql, me: string, horizonMs: number, limit: number): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    update runs set parked = false, wake_at = null
    where id = any(array(
      select id from runs where owner_id = ${me}::uuid and parked and wake_at <= now() + ${horizonMs} * interval '1 millisecond'
      order by wake_at limit ${limit}))
    returning id`;
  return rows.map((r) => r.id);
}

/** Which of these runs another process owns now. */
export async function runsOwnedElsewhere(sql: Sql, me: string, runIds: number[]): Promise<number[]> {
  if (runIds.length === 0) return [];
  const rows = await sql<{ id: number }[]>`select id from runs where id = any(${runIds}::bigint[]) and ${notOwnedBy(sql, me)}`;
  return rows.map((r) => r.id);
}

function notOwnedBy(sql: Sql | Tx, owner: string): Fragment {
  return sql`owner_id is distinct from ${owner}::uuid`;
}

/** A condition true when none of these runs is owned by another process than `owner` (the batch statement checks it). */
export function allOwnedBy(sql: Sql | Tx, runIds: number[], owner: string): Fragment {
  return sql`(select count(*) from runs where id = any(${runIds}::bigint[]) and ${notOwnedBy(sql, owner)}) = 0`;
}

/**
 * Inserts new runs, owned by `owner`, returning (id, uid) of those inserted:
 * one whose request_id is taken is not (the batch statement checks the count).
 */
export function insertRuns(sql: Sql | Tx, runs: NewRunRow[], owner: string): Fragment {
  const json = JSON.stringify(
    runs.map((r) => ({
      u: r.uid,
      ns: r.namespace,
      sa: r.startAt?.getTime() ?? null,
      rq: r.requestId,
      rh: base64(r.requestHash),
      n: r.name,
      st: r.state,
      sp: base64(r.spec),
      ca: r.createdAt.getTime(),
      dl: r.deadline?.getTime() ?? null,
      fa: r.finishedAt?.getTime() ?? null,
      o: base64(r.outcome),
      fs: base64(r.finalState),
      tc: r.taskCount,
      tp: r.traceparent, // left out of the JSON when the run is not traced
      ts: r.tracestate,
    })),
  );
  const ms = (column: string) => msToTimestamp(sql, column);
  return sql`
    insert into runs (uid, namespace, start_at, request_id, request_hash, name, state, spec, created_at, deadline, finished_at, outcome, final_state, task_count, owner_id, traceparent, tracestate)
    select n.u, n.ns, ${ms("n.sa")}, n.rq, decode(n.rh, 'base64'), n.n, n.st, decode(n.sp, 'base64'), ${ms("n.ca")}, ${ms("n.dl")}, ${ms("n.fa")},
           decode(n.o, 'base64'), decode(n.fs, 'base64'), n.tc, ${owner}::uuid, n.tp, n.ts
    from json_to_recordset(${json}::text::json) as n(u uuid, ns text, sa float8, rq text, rh text, n text, st smallint, sp text, ca float8, dl float8, fa float8, o text, fs text, tc integer, tp text, ts text)
    on conflict (namespace, request_id) do nothing
    returning id, uid`;
}

/** Writes runs' new states (and, for finished ones, their outcomes). */
export function updateRuns(sql: Sql | Tx, changes: RunStateChange[]): Fragment {
  const json = JSON.stringify(
    changes.map((c) => ({ i: c.id, st: c.state, tc: c.taskCount, fa: c.finishedAt?.getTime() ?? null, o: base64(c.outcome), fs: base64(c.finalState) })),
  );
  return sql`
    update runs set state = c.st, task_count = c.tc, finished_at = ${msToTimestamp(sql, "c.fa")}, outcome = decode(c.o, 'base64'), final_state = decode(c.fs, 'base64')
    from json_to_recordset(${json}::text::json) as c(i bigint, st smallint, tc integer, fa float8, o text, fs text)
    where runs.id = c.i
    returning 1`;
}

/** Runs finished (succeeded, failed, cancelled), in a WHERE clause: the runs_finished index says the same (a literal, so every plan can use it). */
function finished(sql: Sql | Tx): Fragment {
  return sql`state >= ${code(sql, RunState.SUCCEEDED)}`;
}

/**
 * Retention: deletes up to `limit` finished runs whose finished_at is older
 * than `hours` hours (the database's clock), oldest first, in one statement
 * (one transaction). Their run_events, payload_blobs, run_inbox and task_queue
 * rows go with them (on delete cascade). Rows another transaction has locked
 * (another process's sweep, a DeleteRun, a late inbox write) are skipped, not
 * waited for: two processes sweeping at once never block each other or
 * delete a run twice. Active runs are never touched. `id = any(array(...))`,
 * not `id in (...)`: the planner then deletes by primary key instead of
 * hashing a scan of every run (measured: a sequential scan of 55,000 runs per
 * batch otherwise). Returns the deleted runs' uids.
 */
export async function deleteFinishedRunsBefore(sql: Sql, hours: number, limit: number): Promise<string[]> {
  const rows = await sql<{ uid: string }[]>`
    delete from runs where id = any(array(
      select id from runs
      where ${finished(sql)} and finished_at < now() - ${hours}::float8 * interval '1 hour'
      order by finished_at, id
      limit ${limit}
      for update skip locked))
    and ${finished(sql)}
    returning uid`;
  return rows.map((r) => r.uid);
}

/**
 * DeleteRun: deletes one finished run (with its events, payloads, inbox and
 * queue rows), and tells every server process (CHANNELS.deleted). "deleted"; "active" when the run exists but has not finished
 * (nothing is deleted); "unknown" when there is no such run.
 */
export async function deleteFinishedRun(sql: Sql, uid: string): Promise<"deleted" | "active" | "unknown"> {
  // Announced on commit: every process forgets the run (its recently-finished cache would still answer GetRun).
  const deleted = await sql`
    with d as (delete from runs where uid = ${uid}::uuid and ${finished(sql)} returning uid)
    select pg_notify(${CHANNELS.deleted}, uid::text) from d`;
  if (deleted.length) return "deleted";
  const [row] = await sql`select 1 from runs where uid = ${uid}::uuid`;
  return row ? "active" : "unknown";
}
