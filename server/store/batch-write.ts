// One group commit's writes as ONE SQL statement. On these machines a round
// trip to PostgreSQL costs about 0.45 ms and BEGIN/COMMIT are round trips of
// their own, so a transaction of six statements spends ~3 ms talking; a
// single statement of data-modifying CTEs commits the same writes atomically
// in one round trip (measured: 4.9 -> ~1.5 ms per chain step). The hot parts
// take their rows as one JSON parameter each (built by V8's native
// JSON.stringify, unpacked by json_to_recordset): postgres.js escaping a dozen
// arrays value by value cost more server CPU than anything else per task.
//
// The statement can also check what the engine assumed optimistically:
// that every result it applied was for the current attempt (the fence) and
// that no request_id was taken meanwhile. If not, pw_check aborts the whole
// statement and nothing is written.

import { CHANNELS } from "./channels.js";
import type { Fragment, Sql, Tx } from "./database.js";
import { deleteEntries, insertResults } from "./inbox.js";
import { insertEvents, type StoredEvent } from "./run-events.js";
import { allOwnedBy, insertRuns, updateRuns, type NewRunRow, type RunStateChange } from "./run-store.js";
import {
  deleteCurrentAttempts,
  holdRows,
  insertRows,
  removeSteps,
  resetAttempts,
  type AttemptKey,
  type CancelledAttempt,
  type QueueRow,
} from "./task-queue.js";

/** A queue row of a run created in the same batch carries its uid instead of its id. */
export type BatchQueueRow = QueueRow & { runUid?: string };

export interface BatchWrite {
  /** The writing process: owner of the new runs, and of every run it writes. */
  owner: string;
  /** Existing runs the batch writes: the statement checks this process still owns them. */
  owned: number[];
  newRuns: NewRunRow[];
  /** Finished attempts whose rows go away; each must still be current. */
  completions: AttemptKey[];
  /** Finished attempts retried at once: their row is reset in place (fenced too). */
  retries: { key: AttemptKey; row: QueueRow }[];
  /** Steps cancelled: their rows go away, whoever holds them. */
  removals: { runId: number; step: number }[];
  rows: BatchQueueRow[];
  holds: { runId: number; held: boolean }[];
  events: StoredEvent[];
  runUpdates: RunStateChange[];
  /** Results for runs another process owns: fenced here, then put in the owner's inbox. */
  foreign: { key: AttemptKey; body: Uint8Array; receivedAt: Date }[];
  /** Inbox entries this batch applied (removed with it). */
  inboxDone: number[];
  /** Ready rows were written that no local worker took: wake the other processes' dispatchers. */
  notifyReady: boolean;
  /** Runs this batch finishes, announced to the other processes (their clients may be waiting on them); empty when alone. */
  finishedUids: string[];
}

/** Uids per notification: a payload must stay under PostgreSQL's 8,000 bytes. */
const UIDS_PER_NOTIFICATION = 200;

export interface BatchWriteResult {
  /** Internal ids of the new runs, by uid. */
  runIds: Map<string, number>;
  /** Attempts removed by a cancel. Those held through other processes were notified to them. */
  cancelled: CancelledAttempt[];
}

/** The SQLSTATE pw_check raises with (a stale result, a taken request_id). */
export const BATCH_CHECK_FAILED = "PW001";
/** The SQLSTATE pw_check_owner raises with (a run was taken over by another process). */
export const OWNERSHIP_LOST = "PW002";

export async function writeBatch(sql: Sql | Tx, w: BatchWrite): Promise<BatchWriteResult> {
  // Only the parts this batch needs go into the statement: PostgreSQL plans a
  // statement at every execution (custom plans), and planning all twelve parts
  // of an empty one cost more than running it (1.6 of 2 ms). A chain step uses
  // three. Each combination is its own prepared statement. Each part is its
  // table's fragment (run-store, run-events, task-queue, inbox).
  const ctes: Fragment[] = [];
  const checks: Fragment[] = [];
  const outputs: Fragment[] = [];
  const retry = w.retries;

  if (w.newRuns.length) {
    ctes.push(sql`nr as (${insertRuns(sql, w.newRuns, w.owner)})`);
    checks.push(sql`pw_check((select count(*) from nr) = ${w.newRuns.length}, 'a request_id was taken meanwhile')`);
    outputs.push(sql`(select json_agg(json_build_array(id, uid)) from nr) as new_runs`);
  }
  if (w.completions.length) ctes.push(sql`done as (${deleteCurrentAttempts(sql, w.completions)})`);
  if (retry.length) ctes.push(sql`retried as (${resetAttempts(sql, retry)})`);
  if (w.completions.length || retry.length) {
    const done = w.completions.length ? sql`(select count(*) from done)` : sql`0`;
    const retried = retry.length ? sql`(select count(*) from retried)` : sql`0`;
    checks.push(sql`pw_check(${done} + ${retried} = ${w.completions.length + retry.length}, 'a result was for an attempt that is no longer current')`);
  }
  if (w.removals.length) {
    ctes.push(sql`removed as (${removeSteps(sql, w.removals)})`);
    outputs.push(sql`(select json_agg(json_build_array(run_id, step, attempt, worker_id, process_id)) from removed) as removed`);
    outputs.push(sql`(select count(pg_notify(${CHANNELS.cancel}, json_build_array(process_id, run_id, step, attempt)::text))
       from removed where process_id is not null and process_id <> ${w.owner}::uuid) as cancels_notified`);
  }
  if (w.rows.length) ctes.push(sql`enq as (${insertRows(sql, w.rows, w.newRuns.length ? "nr" : undefined)} returning 1)`);
  if (w.events.length) ctes.push(sql`ev as (${insertEvents(sql, w.events)})`);
  if (w.runUpdates.length) ctes.push(sql`upd as (${updateRuns(sql, w.runUpdates)})`);
  if (w.foreign.length) {
    // Fenced here like any result, then put in the owner's inbox.
    ctes.push(
      sql`foreign_done as (${deleteCurrentAttempts(
        sql,
        w.foreign.map((f) => f.key),
      )})`,
    );
    ctes.push(sql`foreign_in as (${insertResults(sql, "foreign_done", w.foreign)})`);
    outputs.push(
      sql`(select count(pg_notify(${CHANNELS.inbox}, o.owner_id::text)) from (select distinct r.owner_id from runs r where r.id in (select run_id from foreign_in)) o) as inbox_notified`,
    );
  }
  if (w.inboxDone.length) {
    ctes.push(sql`inbox_done as (${deleteEntries(sql, w.inboxDone)})`);
    checks.push(sql`pw_check((select count(*) from inbox_done) = ${w.inboxDone.length}, 'an inbox entry was applied twice')`);
  }
  if (w.holds.length) ctes.push(sql`held as (${holdRows(sql, w.holds)})`);
  if (w.owned.length) checks.push(sql`pw_check_owner(${allOwnedBy(sql, w.owned, w.owner)})`);
  if (w.notifyReady) outputs.push(sql`pg_notify(${CHANNELS.ready}, '') as ready_notified`);
  if (w.finishedUids.length) {
    const payloads: string[] = [];
    for (let i = 0; i < w.finishedUids.length; i += UIDS_PER_NOTIFICATION) payloads.push(w.finishedUids.slice(i, i + UIDS_PER_NOTIFICATION).join(","));
    outputs.push(sql`(select count(pg_notify(${CHANNELS.finished}, p)) from unnest(${payloads}::text[]) as p) as finished_notified`);
  }
  if (ctes.length === 0 && checks.length === 0 && outputs.length === 0) return { runIds: new Map(), cancelled: [] };

  const join = (parts: Fragment[], separator: Fragment) => parts.slice(1).reduce((acc, p) => sql`${acc}${separator}${p}`, parts[0]);
  const selected: Fragment[] = [checks.length ? sql`(${join(checks, sql` and `)}) as ok` : sql`true as ok`, ...outputs];
  const [result] = await sql<{ new_runs?: [number, string][] | null; removed?: [number, number, number, string | null, string | null][] | null }[]>`
    ${ctes.length ? sql`with ${join(ctes, sql`, `)}` : sql``}
    select ${join(selected, sql`, `)}`;
  return {
    runIds: new Map((result.new_runs ?? []).map(([id, uid]) => [uid, Number(id)])),
    cancelled: (result.removed ?? []).map(([runId, step, attempt, workerId, processId]) => ({ runId: Number(runId), step, attempt, workerId, processId })),
  };
}
