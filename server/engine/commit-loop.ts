// The commit loop: each batch of items is built, written and, once committed,
// acted on (callers answered, tasks delivered, waiters and watchers woken).
// The fast mode writes in one statement that checks its assumptions (results
// current, request ids free); when the check fails, the batch is redone the
// careful way, in a transaction. A batch the database refuses is split until
// the item it refuses is alone, and that item fails alone.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { TaskResultSchema } from "@pipewright/protocol";
import { PipewrightError } from "../core/errors.js";
import type { Metrics } from "../observe/metrics.js";
import { ErrorTypes, serverError } from "../core/values.js";
import { BATCH_CHECK_FAILED, OWNERSHIP_LOST } from "../store/batch-write.js";
import { isUnavailable, storageProblem } from "../store/database-errors.js";
import { inTransaction, type Sql } from "../store/database.js";
import * as runs from "../store/run-store.js";
import * as queue from "../store/task-queue.js";
import { Batch, undeliveredClaims, type BatchMode } from "./batch.js";
import type { BatchBuilder } from "./batch-builder.js";
import type { BatchWriter } from "./batch-writer.js";
import type { GroupCommitter } from "./group-committer.js";
import { internalError } from "./internal-error.js";
import { requestKey, type Item } from "./items.js";
import { stepKey, type OwnedRun } from "./owned-run.js";
import type { Parking } from "./parking.js";
import type { Peers } from "./peers.js";
import type { DispatchPort } from "./ports.js";
import type { RunReads } from "./run-reads.js";
import type { RunRegistry } from "./run-registry.js";
import { runFromMachine } from "./run-views.js";
import type { Logger } from "../observe/logger.js";

type Lock = (key: string) => boolean;

export interface CommitLoopParts {
  sql: Sql;
  registry: RunRegistry;
  peers: Peers;
  builder: BatchBuilder;
  writer: BatchWriter;
  reads: RunReads;
  dispatch: Pick<DispatchPort, "release" | "deliver" | "cancel" | "poke" | "pokeAt">;
  committer: Pick<GroupCommitter<Item>, "add" | "addAll" | "retry">;
  parking: Pick<Parking, "park" | "consider" | "loadFor">;
  metrics: Pick<Metrics, "commitDuration" | "commitBatchSize" | "runsSubmitted">;
  log: Logger;
}

const unavailable = () => new PipewrightError("UNAVAILABLE", "the database is unavailable, retry later");
/** Careful tries of a batch whose request ids other processes keep taking meanwhile, at most. */
const CAREFUL_ATTEMPTS = 3;

export class CommitLoop {
  constructor(private readonly p: CommitLoopParts) {}

  /** Commits one batch of items (the group committer's flush). */
  async flush(all: Item[], lock: Lock): Promise<void> {
    const { registry, metrics } = this.p;
    const started = performance.now();
    // Parks are no batch writes of their own: done first, under the runs' order keys.
    const parks = all.flatMap((i) => (i.kind === "park" ? [i.run] : []));
    if (parks.length) await this.p.parking.park(parks);
    const items = parks.length ? all.filter((i) => i.kind !== "park") : all;
    if (items.length === 0) return;
    try {
      if ((registry.needsReload.size || !registry.unsure.empty) && !(await registry.reloadPending())) {
        this.failItems(items, unavailable());
        return;
      }
      const failure = await this.commitChecked(items, lock);
      if (failure) await this.settleFailure(items, lock, failure.error);
    } finally {
      metrics.commitDuration.observe((performance.now() - started) / 1000);
      metrics.commitBatchSize.observe(items.length);
    }
  }

  /** Commits the items: fast, then careful if the fast statement's check failed. Returns the error when nothing was written. */
  private async commitChecked(items: Item[], lock: Lock): Promise<{ error: unknown } | undefined> {
    const fast = await this.commit(items, "fast", lock);
    if (fast !== "check failed") return fast === "ok" ? undefined : fast;
    // A result was stale or a request_id taken: nothing was written; the
    // touched runs were reloaded. Redo the batch the careful way.
    await this.p.registry.reloadPending();
    for (let attempt = 1; ; attempt++) {
      const careful = await this.commit(items, "careful", lock);
      if (careful === "ok" || careful === "check failed") return undefined;
      // Another process took one of the batch's request ids between the careful look and the
      // insert (two processes starting the same schedule fire or trigger run at once): look
      // again, it is committed now. Anything else fails as it is.
      if ((careful.error as { code?: string }).code !== BATCH_CHECK_FAILED || attempt >= CAREFUL_ATTEMPTS) return careful;
      await this.p.registry.reloadPending();
    }
  }

  /**
   * A batch that could not be written. With the database unavailable, its
   * items wait (results) or fail back to their callers (UNAVAILABLE). Else one
   * of its items is what the database refuses: the batch is split in halves
   * until that item is alone, and it fails alone (one client's bad submit
   * used to fail 96 of 100 other clients' submits in the same batch, and a
   * result that could not be stored was retried every 1.6 s forever).
   */
  private async settleFailure(items: Item[], lock: Lock, error: unknown): Promise<void> {
    if (isUnavailable(error) || error instanceof PipewrightError) {
      this.p.log.warn({ items: items.length, err: error }, `commit failed (${items.length} items): ${(error as Error).message}`);
      this.failItems(items, error);
      await new Promise((r) => setTimeout(r, 100));
      return;
    }
    const work = items.filter((i) => i.kind !== "inbox");
    if (work.length <= 1) {
      await this.failAlone(work[0] ?? items[0], lock, error);
      return;
    }
    const mid = Math.ceil(work.length / 2);
    for (const half of [work.slice(0, mid), work.slice(mid)]) {
      if (!(await this.p.registry.reloadPending())) {
        this.failItems(half, unavailable());
        continue;
      }
      const failure = await this.commitChecked(half, lock);
      if (failure) await this.settleFailure(half, lock, failure.error);
    }
    if (work.length < items.length) this.p.committer.add({ kind: "inbox" });
  }

  /** The one item of a batch the database refuses: it fails, with a reason, and nothing else does. */
  private async failAlone(item: Item, lock: Lock, error: unknown): Promise<void> {
    const ref = randomUUID().slice(0, 8);
    const { reason, tooLarge } = storageProblem(error);
    this.p.log.error({ ref, item: item.kind, err: error }, `commit refused [${ref}] for one ${item.kind}: ${reason}`);
    switch (item.kind) {
      case "submit":
      case "control": {
        const what = item.kind === "submit" ? "the submission" : `the ${item.action} of run ${item.uid}`;
        item.reject(new PipewrightError(tooLarge ? "RESOURCE_EXHAUSTED" : "INVALID_ARGUMENT", `${what} could not be stored: ${reason} (ref ${ref})`));
        return;
      }
      case "result": {
        // The attempt fails with a final error instead (it is small: it can be stored);
        // if even that cannot be, the run cannot go on.
        const r = item.result;
        const error = serverError("InvalidResult", `the worker's result could not be stored: ${reason} (ref ${ref})`);
        if (r.result.outcome.case !== "error" || r.result.outcome.value.type !== ErrorTypes.invalidResult) {
          const replaced: Item = {
            kind: "result",
            result: { ...r, raw: undefined, result: create(TaskResultSchema, { key: r.result.key, outcome: { case: "error", value: error } }) },
          };
          if (await this.p.registry.reloadPending()) {
            const failure = await this.commitChecked([replaced], lock);
            if (!failure) return;
          }
        }
        this.p.committer.add({
          kind: "abandon",
          runId: r.runId,
          error: internalError(this.p.log, `storing the failure of run ${r.runId}'s step ${r.step}`, error, {
            run_id: r.result.key?.runId,
            step: r.step,
            attempt: r.attempt,
          }),
        });
        return;
      }
      case "abandon":
        this.p.log.error(
          { ref, run_id: this.p.registry.byId(item.runId)?.uid },
          `run ${item.runId} could not even be ended [${ref}]; it stays as stored until a restart replays it`,
        );
        return;
      case "inbox":
        // Entries other processes put here for our runs: looked at again in a moment, not
        // at once (an entry that cannot be applied must not make this a busy loop).
        setTimeout(() => this.p.committer.add(item), 1000).unref();
        return;
      case "park":
        return; // never in a batch (see flush)
    }
  }

  private async commit(items: Item[], mode: BatchMode, lock: Lock): Promise<"ok" | "check failed" | { error: unknown }> {
    const { registry, builder, writer } = this.p;
    const batch = new Batch(mode, lock);
    const inbox = items.some((i) => i.kind === "inbox") ? await this.p.peers.readOwnInbox() : [];
    // Entries for runs of ours not in memory: parked ones are loaded, then the inbox looked at again.
    const absent = inbox.filter((e) => !registry.byId(e.runId)).map((e) => e.runId);
    if (absent.length) this.p.parking.loadFor(absent).catch((err) => this.p.log.warn({ err }, `loading parked runs: ${err.message}`));
    registry.inFlight.add(batch);
    try {
      if (mode === "fast") {
        await builder.applySubmits(items, batch, new Map());
        builder.applyInbox(inbox, batch);
        builder.applyResults(items, batch, undefined);
        builder.applyControls(items, batch);
        builder.applyAbandons(items, batch);
        await writer.prepare(batch);
        await writer.write(undefined, batch);
      } else {
        await inTransaction(this.p.sql, async (tx) => {
          const asked = items.flatMap((i) => (i.kind === "submit" ? i.batch.filter((p) => p.requestId) : []));
          const known = new Map((await runs.findByRequestIds(tx, asked)).map((e) => [requestKey(e.namespace, e.requestId), e]));
          await builder.applySubmits(items, batch, known);
          builder.applyInbox(inbox, batch);
          const awaited = builder.awaitedResults(items, batch);
          const accepted = await queue.completeAttempts(
            tx,
            awaited.map((r) => ({ runId: r.runId, step: r.step, attempt: r.attempt })),
          );
          builder.applyResults(items, batch, new Set(accepted.map((a) => `${a.runId}/${a.step}/${a.attempt}`)));
          builder.applyControls(items, batch);
          builder.applyAbandons(items, batch);
          await writer.prepare(batch);
          await writer.write(tx, batch);
        });
      }
    } catch (err) {
      registry.inFlight.delete(batch);
      // A broken connection leaves the commit in doubt: what it may have written is checked once the database answers.
      if (isUnavailable(err))
        registry.unsure.note(
          batch.newRuns.map((n) => n.run.uid),
          undeliveredClaims(batch),
        );
      this.rollback(batch);
      const code = (err as { code?: string }).code;
      if (code === OWNERSHIP_LOST) {
        await this.p.peers.dropMovedRuns([...batch.changed].map((r) => r.id).filter((id) => id > 0));
        this.p.committer.retry(items.filter((i) => i.kind !== "inbox"));
        return "ok"; // nothing to settle: the items go again, to their runs' new owners
      }
      if (mode === "fast" && code === BATCH_CHECK_FAILED) return "check failed";
      return { error: err };
    }
    registry.inFlight.delete(batch);
    if (batch.newRuns.length) this.p.metrics.runsSubmitted.inc(batch.newRuns.length);
    if (batch.deferred.length) this.p.committer.addAll(batch.deferred);
    // Watchers hear of the batch's events before its attempts go out: a worker's "running"
    // (a live event) then never reaches a watcher ahead of the "queued" it follows.
    this.publish(batch);
    this.act(batch);
    this.settle(batch);
    return "ok";
  }

  /** Submits and controls fail back to their callers; results (and run endings) are kept for a retry. */
  private failItems(items: Item[], err: unknown): void {
    const results = items.filter((i) => i.kind === "result" || i.kind === "abandon");
    if (results.length) this.p.committer.retry(results);
    const cause = err instanceof PipewrightError ? err : new PipewrightError("UNAVAILABLE", "could not persist the change, retry later");
    for (const item of items) if (item.kind === "submit" || item.kind === "control") item.reject(cause);
  }

  /** Undoes in memory what a batch that was not written did. */
  private rollback(batch: Batch): void {
    const { registry } = this.p;
    for (const r of batch.reservations.values()) this.p.dispatch.release(r);
    for (const { run } of batch.newRuns) registry.disown(run);
    for (const run of batch.changed) if (registry.byId(run.id) === run) registry.needsReload.add(run.id);
  }

  /** After the commit: the answers the batch owes, then what the dispatcher is told. */
  private act(batch: Batch): void {
    for (const answer of batch.answers) {
      try {
        switch (answer.kind) {
          case "submitted": {
            logAccepted(this.p.log, answer.runs);
            const pending = answer.runs.map((entry) =>
              "run" in entry
                ? Promise.resolve({ run: runFromMachine(entry.run, entry.run.machine), existing: false })
                : this.p.reads.getRun(entry.existing, false).then((run) => ({ run, existing: true })),
            );
            Promise.all(pending).then(answer.item.resolve, answer.item.reject);
            break;
          }
          case "controlled":
            answer.item.resolve(runFromMachine(answer.run, answer.run.machine), answer.signal);
            break;
          case "notHeld": {
            // Let go meanwhile (parked here, or taken over by another process): through the inbox of whoever owns it now.
            const { item } = answer;
            if (item.action === "cancel" || item.action === "pause" || item.action === "resume" || item.action === "signal")
              this.p.peers.forwardControl(item.uid, item.action, item.reason, item.signal).then(item.resolve, item.reject);
            else this.p.peers.controlRefusal(item.uid, item.action).then(item.reject, item.reject);
            break;
          }
          case "refused":
            answer.item.reject(answer.error);
            break;
        }
      } catch (err) {
        this.p.log.error({ err }, `after-commit answer failed: ${(err as Error).message}`);
      }
    }
    const plan = batch.dispatchPlan;
    if (!plan) return;
    const { dispatch, registry } = this.p;
    for (const { run, row, message, size } of plan.claimed) {
      const res = batch.reservations.get(stepKey(run, row.step));
      if (!res) continue;
      if (run.machine.result || !registry.byId(run.id)) {
        dispatch.release(res);
        continue;
      }
      dispatch.deliver(res, {
        runId: run.id,
        runUid: run.uid,
        step: row.step,
        attempt: row.attempt + 1,
        task: row.task,
        queue: row.queue,
        readyAt: row.availableAt.getTime(),
        assignment: row.assignment,
        message,
        size,
      });
    }
    if (plan.cancelled.length) dispatch.cancel(plan.cancelled, "the run was cancelled");
    if (plan.poke) dispatch.poke();
    if (plan.pokeAt !== undefined) dispatch.pokeAt(plan.pokeAt);
  }

  /** After the commit, first: what is committed moves on, and watchers get the batch's events. */
  private publish(batch: Batch): void {
    for (const run of batch.changed) run.committedSeq = run.nextSeq - 1;
    for (const [run, events] of batch.liveEvents) for (const l of run.listeners) l(events);
    for (const run of batch.changed) {
      if (!run.heldLive) continue;
      const held = run.heldLive;
      run.heldLive = undefined;
      for (const l of run.listeners) l(held);
    }
  }

  /** After the commit, last: finished runs wake their waiters and go to the recently-finished cache. */
  private settle(batch: Batch): void {
    for (const run of batch.changed) {
      if (run.machine.result) this.p.registry.finished(run);
      else {
        this.p.registry.armWake(run);
        this.p.parking.consider(run);
      }
    }
  }
}

/**
 * "run accepted", once its submit committed: debug (a submit answered is routine, and at
 * thousands of runs a second a line each at info would be most of the log; an operator
 * counts runs with metrics, and finds one run's story by its run_id at debug).
 */
function logAccepted(log: Logger, entries: readonly ({ run: OwnedRun } | { existing: string })[]): void {
  if (!log.isLevelEnabled("debug")) return;
  for (const entry of entries) {
    if (!("run" in entry)) continue; // an earlier submit's run (same request_id): accepted then
    const run = entry.run;
    log.debug({ run_id: run.uid, run_name: run.name || undefined, request_id: run.requestId || undefined, tasks: run.machine.graph.taskCount }, "run accepted");
  }
}
