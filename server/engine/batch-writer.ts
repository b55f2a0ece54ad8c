// Writes a built batch: one statement (store/batch-write.ts) carries the new
// runs, events, queue rows, completions, removals and run updates; queue rows
// beyond the statement's share follow in chunks, and the big payloads the
// rows refer to. Then it plans, as data, what the dispatcher is told once the
// batch has committed.

import { minOf } from "../core/arrays.js";
import { encodeAssignment, type TimeoutDefaults } from "../core/assignment-codec.js";
import { writeBatch, type BatchWrite, type BatchWriteResult } from "../store/batch-write.js";
import { inTransaction, type Sql, type Tx } from "../store/database.js";
import { insertBlobs } from "../store/payload-blobs.js";
import { writeEventWaits } from "../store/event-waits.js";
import { insertQueueRows, type QueueRow } from "../store/task-queue.js";
import type { Batch, PendingRow } from "./batch.js";
import { stepKey } from "./owned-run.js";
import { pauseForOthers } from "./pause-for-others.js";
import type { DispatchPort } from "./ports.js";
import type { RunRegistry } from "./run-registry.js";
import { encodeFinalState, encodeOutcome } from "./run-views.js";

/** Rows written with the batch's statement; the rest follow in chunks of this size (bounded memory for huge groups). */
export const ROWS_PER_STATEMENT = 5000;

const EMPTY = new Uint8Array();

export interface WriterConfig {
  processId: string;
  timeouts: TimeoutDefaults;
}

export class BatchWriter {
  constructor(
    private readonly sql: Sql,
    private readonly registry: RunRegistry,
    private readonly dispatch: Pick<DispatchPort, "release">,
    private readonly config: WriterConfig,
    /** Whether other server processes are alive (finished runs are then announced to them). */
    private readonly peersAlive: () => boolean,
  ) {}

  /**
   * Encodes the assignments of the rows the statement carries, letting other
   * work run every ~10 ms: 5,000 assignments take 20-140 ms to encode (a big
   * group's rows). Done before the write, outside any transaction.
   */
  async prepare(batch: Batch): Promise<void> {
    await this.materializeInSlices(batch.rows.slice(0, ROWS_PER_STATEMENT).concat(batch.retries), batch);
  }

  /**
   * Writes the batch: its statement, then the queue rows beyond the
   * statement's share and the big payloads its rows refer to; then plans what
   * follows the commit. Without a transaction (`tx` undefined), one opens when
   * there is more than the statement (one statement commits on its own).
   */
  async write(tx: Tx | undefined, batch: Batch): Promise<void> {
    const w = this.toWrite(batch);
    const run = async (sql: Sql | Tx) => {
      const result = await writeBatch(sql, w);
      this.assignRunIds(batch, result);
      if (batch.eventWaits.length)
        await writeEventWaits(
          sql,
          batch.eventWaits.map((w) => ({ runId: w.run.id, step: w.step, namespace: w.run.namespace, name: w.name, on: w.on })),
        );
      await this.writeRemainingRows(sql, batch);
      await this.writeBlobs(sql, batch);
      this.finishWrite(batch, result);
    };
    if (tx) await run(tx);
    else if (batch.rows.length <= ROWS_PER_STATEMENT && batch.blobs.size === 0 && batch.eventWaits.length === 0) await run(this.sql);
    else await inTransaction(this.sql, run);
  }

  /** The batch as the single statement's input. */
  private toWrite(batch: Batch): BatchWrite {
    // A step dispatched and cancelled within one batch is never written.
    const removed = new Set(batch.removals.map((r) => stepKey(r.run, r.step)));
    for (const [k, res] of batch.reservations) {
      if (removed.has(k)) {
        this.dispatch.release(res);
        batch.reservations.delete(k);
      }
    }
    const kept = (p: PendingRow) => !removed.has(stepKey(p.run, p.row.step));
    batch.rows = batch.rows.filter(kept);
    batch.retries = batch.retries.filter(kept);
    const newRuns = new Set(batch.newRuns.map((n) => n.run));
    const now = Date.now();
    return {
      owner: this.config.processId,
      owned: [...batch.changed].filter((r) => !newRuns.has(r)).map((r) => r.id),
      foreign: batch.foreign,
      inboxDone: batch.inboxDone,
      notifyReady: batch.rows.some((p) => !p.row.claimedBy && !p.row.held && p.row.availableAt.getTime() <= now),
      finishedUids: this.peersAlive() ? [...batch.changed].filter((r) => r.machine.result).map((r) => r.uid) : [],
      newRuns: batch.newRuns.map((n) => n.row),
      completions: batch.completions,
      retries: batch.retries.map((p) => ({
        key: { runId: p.run.id, step: p.row.step, attempt: p.row.attempt },
        row: { ...this.materialize(p, batch), runId: p.run.id },
      })),
      removals: batch.removals.map((r) => ({ runId: r.run.id, step: r.step })),
      rows: batch.rows
        .slice(0, ROWS_PER_STATEMENT)
        .map((p) => ({ ...this.materialize(p, batch), runId: p.run.id, runUid: p.run.id === 0 ? p.run.uid : undefined })),
      holds: batch.holds.map((h) => ({ runId: h.run.id, held: h.held })),
      events: batch.events,
      runUpdates: [...batch.dirty]
        .filter((run) => !newRuns.has(run))
        .map((run) => {
          const m = run.machine;
          const r = m.result;
          return {
            id: run.id,
            state: m.runState,
            taskCount: m.graph.taskCount,
            finishedAt: r ? new Date(m.finishedAt!) : undefined,
            outcome: r ? encodeOutcome(r.outcome) : undefined,
            finalState: r ? encodeFinalState(r.finalState) : undefined,
          };
        }),
    };
  }

  private async materializeInSlices(rows: PendingRow[], batch: Batch): Promise<void> {
    for (let i = 0; i < rows.length; i++) {
      this.materialize(rows[i], batch);
      if (i % 256 === 255) await pauseForOthers();
    }
  }

  /** A row with its assignment encoded (its big payloads noted for the batch). */
  private materialize(p: PendingRow, batch: Batch): QueueRow {
    if (p.dispatch) {
      const encoded = encodeAssignment(p.dispatch, this.config.timeouts, p.trace);
      p.row.assignment = encoded.bytes;
      batch.keepBlobs(p.run, encoded.blobs);
      p.dispatch = undefined;
    }
    return p.row;
  }

  /** The big payloads referred to by the rows written (each once per run; see core/payload-refs.ts). */
  private async writeBlobs(sql: Sql | Tx, batch: Batch): Promise<void> {
    if (batch.blobs.size === 0) return;
    const blobs = [...batch.blobs.values()];
    await insertBlobs(
      sql,
      blobs.map((b) => ({ runId: b.run.id, hash: b.hash, data: b.data })),
    );
    for (const b of blobs) b.run.storedBlobs.add(Buffer.from(b.hash).toString("hex"));
  }

  /** Rows beyond the first statement's share, in chunks (run ids are known by now). */
  private async writeRemainingRows(tx: Sql | Tx, batch: Batch): Promise<void> {
    // Two chunks in flight: PostgreSQL inserts one while this process encodes the next
    // (pipelined on the transaction's connection), and memory holds at most two encoded.
    let previous: Promise<void> = Promise.resolve();
    for (let i = ROWS_PER_STATEMENT; i < batch.rows.length; i += ROWS_PER_STATEMENT) {
      const pending = batch.rows.slice(i, i + ROWS_PER_STATEMENT);
      await this.materializeInSlices(pending, batch);
      const written = insertQueueRows(
        tx,
        pending.map((p) => ({ ...this.materialize(p, batch), runId: p.run.id })),
      ).then(() => {
        for (const p of pending) if (!p.row.claimedBy) p.row.assignment = EMPTY; // written: let it go
      });
      written.catch(() => {}); // if an earlier chunk fails, this one's failure is not news (and must not go unhandled)
      await previous;
      previous = written;
    }
    await previous;
  }

  /** After the statement: new runs get their ids. */
  private assignRunIds(batch: Batch, result: BatchWriteResult): void {
    for (const { run } of batch.newRuns) {
      if (run.id) continue;
      const id = result.runIds.get(run.uid);
      if (id === undefined) throw new Error(`the new run ${run.uid} got no id`);
      run.id = id;
    }
  }

  /** After the writes: own the new runs; plan deliveries, cancels and wake-ups. */
  private finishWrite(batch: Batch, result: BatchWriteResult): void {
    for (const { run } of batch.newRuns) this.registry.own(run);
    const written = [...batch.rows, ...batch.retries];
    const now = Date.now();
    const later = written.filter((p) => !p.row.held && p.row.availableAt.getTime() > now).map((p) => p.row.availableAt.getTime());
    const unreserved = written.some((p) => !p.row.claimedBy && !p.row.held && p.row.availableAt.getTime() <= now);
    batch.dispatchPlan = {
      claimed: written.filter((p) => p.row.claimedBy),
      cancelled: result.cancelled,
      poke: unreserved || batch.holds.some((h) => !h.held),
      pokeAt: later.length ? minOf(later) : undefined,
    };
  }
}
