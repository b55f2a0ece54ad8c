// One batch: everything the items of one commit decided, gathered while they
// are applied to their runs' machines, then written in one statement, then
// acted on. What happens after the commit is data (answers, deliveries), so
// nothing leaves the process before the commit that caused it.

import type { TaskAssignment } from "@pipewright/protocol";
import type { BlobData } from "../core/payload-refs.js";
import type { Dispatch, SignalOutcome } from "../core/run-machine.js";
import type { StoredEvent } from "../store/run-events.js";
import type { NewRunRow } from "../store/run-store.js";
import type * as queue from "../store/task-queue.js";
import type { ControlItem, Item, SubmitItem } from "./items.js";
import type { OwnedRun } from "./owned-run.js";
import type { Reservation } from "./ports.js";
import type { RunEvent } from "@pipewright/protocol";

/** A queue row the batch will write, with its run (whose id a new run only gets on writing). */
export interface PendingRow {
  run: OwnedRun;
  row: queue.QueueRow;
  /** The assignment as a message, for a local worker reserved for it. */
  message?: TaskAssignment;
  /** About the message's bytes (for packing assignments in one message to the worker). */
  size?: number;
  /** Not encoded yet (a row nobody is reserved for): encoded when written. */
  dispatch?: Dispatch;
  /** The trace context its assignment carries, when the run is traced (TaskAssignment.trace_context). */
  trace?: Record<string, string>;
}

/** An answer the batch owes a caller, given once it committed. */
export type Answer =
  /** The runs of a submit: created by this batch, or existing ones (same request_id) read then. */
  | { kind: "submitted"; item: SubmitItem; runs: ({ existing: string } | { run: OwnedRun })[] }
  | { kind: "controlled"; item: ControlItem; run: OwnedRun; signal?: SignalOutcome }
  /** The run is not held here (any more): the answer says why, from the database. */
  | { kind: "notHeld"; item: ControlItem }
  | { kind: "refused"; item: SubmitItem | ControlItem; error: unknown };

/** What the dispatcher is told once the batch committed. */
export interface DispatchPlan {
  /** Rows written already claimed for a reserved local worker: deliver (or release, if the run ended). */
  claimed: PendingRow[];
  /** Attempts workers hold whose steps this batch cancelled. */
  cancelled: queue.CancelledAttempt[];
  /** Ready rows nobody was reserved for, or held rows let go: look for workers. */
  poke: boolean;
  /** The earliest time a delayed row written becomes ready. */
  pokeAt?: number;
}

/**
 * "fast": results are assumed current and checked inside the statement;
 * "careful": results are fenced first, in a transaction (after a failed check).
 */
export type BatchMode = "fast" | "careful";

export class Batch {
  constructor(
    readonly mode: BatchMode,
    /** Holds a run for this batch (see GroupCommitter): false if another batch in flight holds it. */
    readonly lock: (key: string) => boolean,
  ) {}
  newRuns: { run: OwnedRun; row: NewRunRow }[] = [];
  completions: queue.AttemptKey[] = [];
  /** Attempt of each step whose result this batch applies, by stepKey. */
  resultAttempts = new Map<string, number>();
  /** Attempts retried at once, their rows reset in place (fast mode). */
  retries: PendingRow[] = [];
  rows: PendingRow[] = [];
  events: StoredEvent[] = [];
  reservations = new Map<string, Reservation>();
  removals: { run: OwnedRun; step: number }[] = [];
  holds: { run: OwnedRun; held: boolean }[] = [];
  changed = new Set<OwnedRun>();
  dirty = new Set<OwnedRun>();
  liveEvents = new Map<OwnedRun, RunEvent[]>();
  answers: Answer[] = [];
  dispatchPlan?: DispatchPlan;
  /** Items to retry next batch (their run is held by another batch in flight, or created in this one). */
  deferred: Item[] = [];
  /** Results for runs another process owns, for its inbox. */
  foreign: { key: queue.AttemptKey; body: Uint8Array; receivedAt: Date }[] = [];
  /** Inbox entries applied by this batch. */
  inboxDone: number[] = [];
  /** Big payloads the written rows refer to, by `${run uid}/${hash}`. */
  blobs = new Map<string, BlobData & { run: OwnedRun }>();
  /** Event waits begun or ended (store/event-waits.ts), written in the batch's transaction. */
  eventWaits: { run: OwnedRun; step: number; name: string; on: boolean }[] = [];
  /** Steps whose result came through the inbox: their queue row is already gone. */
  preFenced = new Set<string>();

  /** Notes the payloads a row's stored assignment refers to, unless its run stored them already. */
  keepBlobs(run: OwnedRun, blobs: BlobData[]): void {
    for (const b of blobs) {
      const hex = Buffer.from(b.hash).toString("hex");
      if (!run.storedBlobs.has(hex)) this.blobs.set(`${run.uid}/${hex}`, { run, ...b });
    }
  }
}

/** The rows a batch wrote already claimed for local workers (none was delivered if its commit failed). */
export function undeliveredClaims(batch: Batch): queue.UndeliveredClaim[] {
  return [...batch.reservations].map(([k, r]) => {
    const slash = k.lastIndexOf("/");
    return { runUid: k.slice(0, slash), step: Number(k.slice(slash + 1)), workerId: r.workerId };
  });
}
