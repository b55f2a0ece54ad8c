// Builds a batch: applies each item to its run's machine and turns what the
// machine did (effects) into the rows, events and answers the batch will
// write and give. Nothing here touches the database: the careful mode's fence
// (which results are current) is passed in.

import { randomUUID } from "node:crypto";
import { trace, type Tracer } from "@opentelemetry/api";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { queueKey, queueLabel, RunState, TaskResultSchema, type TaskResult } from "@pipewright/protocol";
import { encodeAssignment, type TimeoutDefaults } from "../core/assignment-codec.js";
import { pushAll } from "../core/arrays.js";
import { PipewrightError } from "../core/errors.js";
import { accepts, controlRefusal, INTERNAL_CONTROLS, type RunControl } from "../core/run-control.js";
import { RunMachine, type Effect, type MachineConfig, type RunInput } from "../core/run-machine.js";
import { endAttempt, startAttempt, startRunTrace, type AttemptEnd } from "../observe/run-spans.js";
import { TRACER_NAME } from "../observe/tracing.js";
import type { InboxEntry } from "../store/inbox.js";
import { EventKind } from "../store/run-events.js";
import * as runs from "../store/run-store.js";
import type * as queue from "../store/task-queue.js";
import type { Batch } from "./batch.js";
import { waitDeadline } from "./deadlines.js";
import { encodeEvent, finishedInput, inboxInput } from "./event-codec.js";
import { internalError } from "./internal-error.js";
import { requestKey, startOf, type Item, type PreparedSubmit } from "./items.js";
import { ownedRun, stepKey, type OwnedRun } from "./owned-run.js";
import { pauseForOthers } from "./pause-for-others.js";
import type { DispatchPort, IncomingResult } from "./ports.js";
import type { RunRegistry } from "./run-registry.js";
import { encodeFinalState, encodeOutcome, eventsOf } from "./run-views.js";
import type { Logger } from "../observe/logger.js";

export interface BuilderConfig {
  machine: MachineConfig;
  processId: string;
  /** Lease given to a worker with each attempt, renewed by its heartbeats. */
  leaseMs: number;
  timeouts: TimeoutDefaults;
  log: Logger;
  /** Records the spans of runs and attempts (default: the global tracer provider's, a no-op unless one is registered). */
  tracer?: Tracer;
}

const EMPTY = new Uint8Array();

export class BatchBuilder {
  /** Results dropped because their attempt was no longer current (fencing). */
  staleResults = 0;
  private readonly tracer: Tracer;

  constructor(
    private readonly registry: RunRegistry,
    private readonly dispatch: Pick<DispatchPort, "reserve">,
    private readonly config: BuilderConfig,
    /** Inbox entries were left for later (their run is busy): look again. */
    private readonly lookAtInboxAgain: () => void,
  ) {
    this.tracer = config.tracer ?? trace.getTracer(TRACER_NAME);
  }

  /**
   * New runs: their machines start now and their rows are written with the
   * state after the start. `known` holds request_ids already in the database
   * (careful mode); in fast mode a taken request_id fails the batch's check.
   */
  async applySubmits(items: Item[], batch: Batch, known: Map<string, runs.ExistingRun>): Promise<void> {
    const claimedNow = new Map<string, { uid: string; hash: Uint8Array | null }>();
    for (const item of items) {
      if (item.kind !== "submit") continue;
      const plan: ({ existing: string } | { run: OwnedRun })[] = [];
      const created: { run: OwnedRun; p: PreparedSubmit }[] = [];
      let conflict: string | undefined;
      let broken: unknown;
      for (const p of item.batch) {
        const key = requestKey(p.namespace, p.requestId);
        const prior = p.requestId ? (claimedNow.get(key) ?? known.get(key)) : undefined;
        if (prior) {
          const hash = "requestHash" in prior ? prior.requestHash : prior.hash;
          if (!sameBytes(hash, p.requestHash)) {
            conflict = `request_id ${JSON.stringify(p.requestId)} was already used for a different submission (run ${prior.uid})`;
            break;
          }
          plan.push({ existing: prior.uid });
          continue;
        }
        const createdAt = p.started?.createdAt ?? Date.now();
        let machine: RunMachine;
        try {
          machine = p.started?.machine ?? new RunMachine(p.pipeline, this.config.machine);
        } catch (err) {
          broken = err; // a bug: this submission fails alone, not the batch it came in
          break;
        }
        const run = ownedRun({
          id: 0, // assigned by the database when the batch is written
          uid: randomUUID(),
          namespace: p.namespace,
          requestId: p.requestId,
          name: p.name,
          createdAt,
          startAt: startOf(p, createdAt),
          // The run timeout counts from the start (a delayed run is not timed out while it waits to begin).
          deadline: p.runTimeoutMs > 0 ? startOf(p, createdAt) + p.runTimeoutMs : undefined,
          machine,
          lastSeq: 0,
        });
        if (p.requestId) claimedNow.set(key, { uid: run.uid, hash: p.requestHash });
        created.push({ run, p });
        plan.push({ run });
      }
      if (conflict || broken) {
        for (const { run } of created) {
          const key = requestKey(run.namespace, run.requestId);
          if (run.requestId && claimedNow.get(key)?.uid === run.uid) claimedNow.delete(key);
        }
        batch.answers.push({ kind: "refused", item, error: conflict ? new PipewrightError("ALREADY_EXISTS", conflict) : broken });
        continue;
      }
      for (const { run, p } of created) {
        run.trace = startRunTrace(this.tracer, p.traceParent, { uid: run.uid, name: p.name, taskCount: p.taskCount }, run.createdAt);
        this.registry.creating(run);
        batch.lock(`uid:${run.uid}`); // a control for it waits for this batch (see orderKey)
        if (p.started) await this.recordInSlices(run, p.started.effects, batch, run.startAt);
        else this.apply(run, { type: "start", at: run.startAt }, batch, 0);
        const m = run.machine;
        const r = m.result;
        batch.newRuns.push({
          run,
          row: {
            uid: run.uid,
            namespace: run.namespace,
            startAt: run.startAt > run.createdAt ? new Date(run.startAt) : null,
            requestId: p.requestId || null,
            requestHash: p.requestHash,
            name: p.name,
            spec: p.spec,
            deadline: run.deadline !== undefined ? new Date(run.deadline) : null,
            taskCount: m.graph.taskCount,
            createdAt: new Date(run.createdAt),
            state: m.runState,
            finishedAt: r ? new Date(m.finishedAt!) : null,
            outcome: r ? encodeOutcome(r.outcome) : null,
            finalState: r ? (encodeFinalState(r.finalState) ?? null) : null,
            traceparent: run.trace?.headers.traceparent,
            tracestate: run.trace?.headers.tracestate,
          },
        });
      }
      batch.answers.push({ kind: "submitted", item, runs: plan });
    }
  }

  /** Results and controls other processes received for runs this one owns. */
  applyInbox(entries: InboxEntry[], batch: Batch): void {
    for (const e of entries) {
      const run = this.registry.byId(e.runId);
      // Not loaded here (yet), or held by another batch in flight: it stays in the inbox for the next look.
      if (!run || !batch.lock(`run:${run.id}`) || this.registry.busyElsewhere(run, batch)) {
        if (run) this.lookAtInboxAgain();
        continue;
      }
      batch.inboxDone.push(e.id);
      const m = run.machine;
      const at = e.receivedAt.getTime();
      if (e.kind === EventKind.taskFinished) {
        if (!m.isAwaitingResult(e.step!)) {
          this.staleResults++;
          continue;
        }
        const k = stepKey(run, e.step!);
        batch.resultAttempts.set(k, e.attempt!);
        batch.preFenced.add(k);
        const result = fromBinary(TaskResultSchema, e.body ?? new Uint8Array());
        if (run.trace) endAttempt(run.trace, e.step!, attemptEnd(result, e.attempt!));
        this.apply(run, finishedInput(result, e.step!, at), batch);
        continue;
      }
      // A control its sender found acceptable; the run may have changed since (finished, say): then it does nothing.
      const input = inboxInput(e, at);
      if (!input || (input.type !== "event" && !accepts(m.runState, input.type as RunControl))) continue;
      // A signal past the run's bounds is dropped here (its sender checked them, but the run may have filled since).
      const bounds = input.type === "signal" ? m.waits.signalRefusal(input.id !== undefined) : undefined;
      if (bounds) {
        this.config.log.warn({ run_id: run.uid, input: input.type }, `signal to run ${run.uid} dropped: ${bounds}`);
        continue;
      }
      this.apply(run, input, batch);
    }
  }

  /** Results this batch can apply (for the careful fence): owned runs, not in another batch, awaiting the step. */
  awaitedResults(items: Item[], batch: Batch): IncomingResult[] {
    const out: IncomingResult[] = [];
    for (const item of items) {
      if (item.kind !== "result") continue;
      const run = this.registry.byId(item.result.runId);
      if (run && !this.registry.busyElsewhere(run, batch) && run.machine.isAwaitingResult(item.result.step)) out.push(item.result);
    }
    return out;
  }

  /**
   * Applies results. `accepted` (careful mode) names the attempts the fence
   * let through; in fast mode every awaited result is applied and the
   * statement checks they were all current. Results for another process's
   * runs are fenced and sent to its inbox.
   */
  applyResults(items: Item[], batch: Batch, accepted: Set<string> | undefined): void {
    for (const item of items) {
      if (item.kind !== "result") continue;
      const r = item.result;
      const run = this.registry.byId(r.runId);
      if (!run) {
        batch.foreign.push({
          key: { runId: r.runId, step: r.step, attempt: r.attempt },
          body: r.raw ?? toBinary(TaskResultSchema, r.result),
          receivedAt: new Date(r.receivedAt),
        });
        continue;
      }
      if (this.registry.busyElsewhere(run, batch)) {
        batch.deferred.push(item); // changed by another batch in flight (its inbox): next batch
        continue;
      }
      if (!run.machine.isAwaitingResult(r.step) || (accepted && !accepted.has(`${r.runId}/${r.step}/${r.attempt}`))) {
        this.staleResults++; // late, duplicated, or no longer the current attempt
        continue;
      }
      batch.resultAttempts.set(stepKey(run, r.step), r.attempt);
      if (run.trace) endAttempt(run.trace, r.step, attemptEnd(r.result, r.attempt));
      if (batch.mode === "fast") batch.completions.push({ runId: r.runId, step: r.step, attempt: r.attempt });
      this.apply(run, finishedInput(r.result, r.step, r.receivedAt), batch, undefined, r.raw);
    }
  }

  applyControls(items: Item[], batch: Batch): void {
    for (const item of items) {
      if (item.kind !== "control") continue;
      if (this.registry.isBeingCreated(item.uid)) {
        batch.deferred.push(item); // its run is being created in this very batch
        continue;
      }
      const run = this.registry.held(item.uid);
      if (!run) {
        if (!INTERNAL_CONTROLS.has(item.action)) batch.answers.push({ kind: "notHeld", item });
        continue;
      }
      if (this.registry.busyElsewhere(run, batch)) {
        batch.deferred.push(item);
        continue;
      }
      const refusal = controlRefusal(run.machine.runState, item.action, run.uid);
      if (refusal) {
        batch.answers.push({ kind: "refused", item, error: new PipewrightError("FAILED_PRECONDITION", refusal) });
        continue;
      }
      const bounds = item.signal && run.machine.waits.signalRefusal(item.signal.id !== undefined);
      if (bounds) {
        batch.answers.push({ kind: "refused", item, error: new PipewrightError("RESOURCE_EXHAUSTED", `run ${run.uid}: ${bounds}`) });
        continue;
      }
      const at = Date.now();
      const input: RunInput =
        item.action === "cancel"
          ? { type: "cancel", at, reason: item.reason }
          : item.action === "signal"
            ? { type: "signal", at, ...item.signal! }
            : { type: item.action, at };
      this.apply(run, input, batch);
      batch.answers.push({ kind: "controlled", item, run, signal: item.signal ? run.machine.lastSignal : undefined });
    }
  }

  /** Runs that cannot go on end FAILED (their tasks cancelled). */
  applyAbandons(items: Item[], batch: Batch): void {
    for (const item of items) {
      if (item.kind !== "abandon") continue;
      const run = this.registry.byId(item.runId);
      if (!run || run.machine.result) continue;
      if (this.registry.busyElsewhere(run, batch)) {
        batch.deferred.push(item);
        continue;
      }
      const before = run.machine.runState;
      const tasksBefore = run.machine.graph.taskCount;
      const at = Date.now();
      this.record(run, run.machine.abandon(item.error, at), batch, before, tasksBefore, run.nextSeq - 1, at);
    }
  }

  /** Applies one input to a run and turns its effects into the batch's writes. `raw`: a result's bytes as received, to store as its event. */
  private apply(run: OwnedRun, input: RunInput, batch: Batch, seq?: number, raw?: Uint8Array): void {
    const before = run.machine.runState;
    const tasksBefore = run.machine.graph.taskCount;
    let effects: Effect[];
    try {
      effects = run.machine.apply(input);
      if (input.type !== "start") {
        seq = run.nextSeq++;
        batch.events.push(encodeEvent(run.id, seq, input, raw));
      }
    } catch (err) {
      // A bug: the machine's state may be half-applied, so it must not go on
      // (nor stay in memory as it is). The run ends FAILED here, its tasks
      // cancelled; the input that broke it is not stored (replaying it would
      // break the same way).
      effects = run.machine.abandon(
        internalError(this.config.log, `applying a ${input.type} to run ${run.uid}`, err, { run_id: run.uid, input: input.type }),
        input.at,
      );
    }
    this.record(run, effects, batch, before, tasksBefore, seq ?? 0, input.at);
  }

  /** record() for the start of a big run (built apart: see RunEngine.submit), letting other work run every ~10 ms. */
  private async recordInSlices(run: OwnedRun, effects: Effect[], batch: Batch, at: number): Promise<void> {
    for (let i = 0; i < effects.length; i += 1024) {
      const slice = effects.slice(i, i + 1024);
      this.record(run, slice, batch, RunState.RUNNING, 0, 0, at);
      await pauseForOthers();
    }
  }

  /** Turns what one input did to a run into the batch's writes and live events. */
  private record(run: OwnedRun, effects: Effect[], batch: Batch, before: RunState, tasksBefore: number, seq: number, at: number): void {
    batch.changed.add(run);
    for (const e of effects) this.effect(run, e, batch);
    if (run.listeners.size) {
      const list = batch.liveEvents.get(run) ?? [];
      pushAll(list, eventsOf(run.uid, run.machine, seq, at, before));
      batch.liveEvents.set(run, list);
    }
    if (run.machine.graph.taskCount !== tasksBefore || run.machine.runState !== before) batch.dirty.add(run);
  }

  private effect(run: OwnedRun, e: Effect, batch: Batch): void {
    switch (e.type) {
      case "dispatch": {
        const d = e.dispatch;
        // The namespace's queue (core/queue-keys.ts): only its workers can reserve, claim or be told of it.
        const queueName = queueKey(run.namespace, d.call.options?.queue || "");
        const paused = run.machine.status === "paused";
        const reservation = !paused && d.notBefore <= Date.now() ? this.dispatch.reserve(d.call.task, queueName) : undefined;
        const k = stepKey(run, d.step);
        if (reservation) batch.reservations.set(k, reservation);
        const previous = batch.resultAttempts.get(k);
        const trace = run.trace && startAttempt(this.tracer, run.trace, run.uid, d, d.call.task, queueLabel(queueName));
        // Encoded now only for a local worker (it gets the message); otherwise when written.
        const assignment = reservation ? encodeAssignment(d, this.config.timeouts, trace) : undefined;
        if (assignment) batch.keepBlobs(run, assignment.blobs);
        const row: queue.QueueRow = {
          runId: run.id,
          step: d.step,
          task: d.call.task,
          queue: queueName,
          availableAt: new Date(Math.max(d.notBefore, 0)),
          assignment: assignment?.bytes ?? EMPTY,
          held: paused,
          attempt: previous ?? 0,
          waitDeadline: waitDeadline(d, this.config.timeouts),
          claimedBy: reservation ? { processId: this.config.processId, workerId: reservation.workerId, leaseMs: this.config.leaseMs } : undefined,
        };
        if (previous !== undefined && batch.mode === "fast" && !batch.preFenced.has(k)) {
          // A retry of an attempt finished in this batch: its row is reset in place.
          batch.completions = batch.completions.filter((c) => !(c.runId === run.id && c.step === d.step));
          batch.retries.push({ run, row, message: assignment?.message, size: assignment?.size, dispatch: assignment ? undefined : d, trace });
        } else {
          batch.rows.push({ run, row, message: assignment?.message, size: assignment?.size, dispatch: assignment ? undefined : d, trace });
        }
        return;
      }
      case "cancelTask":
        if (run.trace) endAttempt(run.trace, e.step, { outcome: "cancelled" });
        batch.removals.push({ run, step: e.step });
        return;
      case "holdQueued":
        batch.holds.push({ run, held: e.held });
        return;
      case "eventWait":
        batch.eventWaits.push({ run, step: e.step, name: e.name, on: e.on });
        return;
      case "finished":
        return; // written with the run's row
    }
  }
}

/** How an attempt ended, for its span. */
function attemptEnd(res: TaskResult, attempt: number): AttemptEnd {
  const o = res.outcome;
  if (o.case === "error") return { outcome: "error", attempt, errorType: o.value.type, message: o.value.message };
  return { outcome: o.case === "pipeline" ? "pipeline" : "value", attempt };
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (!a || !b) return a === b || (!a?.length && !b?.length);
  return Buffer.from(a).equals(Buffer.from(b));
}
