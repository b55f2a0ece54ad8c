// Where the engine and the dispatcher meet: the only engine types the
// dispatcher may import (the boundary check in `npm test` holds it to that).
//
// A result's way back, and a task's way out, cross here:
//
//   worker stream ──> Dispatcher ──ResultSink.results──> RunEngine (commits it)
//   RunEngine ──DispatchPort──> Dispatcher ──> worker stream
//
// The fast path hands a task to a local worker without a trip through the
// queue: while building a batch the engine `reserve`s a free slot of a local
// worker serving the task; the batch writes the queue row already claimed for
// that worker; after the commit the engine `deliver`s the claimed attempt to
// it, or, if the row was not written (a failed commit, a step cancelled in the
// same batch, a run that ended), `release`s the slot. Every reservation ends
// in exactly one deliver or release. Rows nobody reserved for are claimed by
// the dispatcher's own claim loop, which the engine wakes with `poke`.

import type { TaskResult, Value } from "@pipewright/protocol";
import type { CancelledAttempt, ClaimedTask } from "../store/task-queue.js";

/** A slot held on a local worker for a task about to be committed (the fast path). */
export interface Reservation {
  readonly workerId: string;
}

/** What the engine needs from the dispatcher. */
export interface DispatchPort {
  /** Holds a free slot of a local worker serving `task` on `queue`, if any. */
  reserve(task: string, queue: string): Reservation | undefined;
  /** Gives back a reservation that will not be used. */
  release(r: Reservation): void;
  /** Sends a committed, already-claimed attempt to the reserved worker. */
  deliver(r: Reservation, task: ClaimedTask): void;
  /** Tells the workers holding these attempts to stop. */
  cancel(attempts: CancelledAttempt[], reason: string): void;
  /** Ready rows were committed that no local worker was reserved for. */
  poke(): void;
  /** Rows become ready at this time (retry backoff): look for them then. */
  pokeAt(time: number): void;
  /** Whether a connected worker (of any process) serves `task` on `queue`. */
  serves(task: string, queue: string): boolean;
  /** The latest progress of a run's running steps held by workers of this process, by step. */
  progressOf(runId: number): ReadonlyMap<number, Value>;
}

/** A result as received from a worker, mapped to the run's internal id. */
export interface IncomingResult {
  runId: number;
  step: number;
  attempt: number;
  result: TaskResult;
  /** The result's bytes as the worker sent them, when known (stored as they are). */
  raw?: Uint8Array;
  receivedAt: number;
}

/** What the dispatcher tells the engine: results to commit, and what only it sees of running attempts. */
export interface ResultSink {
  /** Results (and synthetic failures: timeouts, lost workers) to apply and commit. */
  results(results: IncomingResult[]): void;
  /** An attempt of this step was handed to a worker (not stored: shown to watchers, an event of the attempt's span). */
  running(runId: number, step: number, attempt: number, workerId: string): void;
  /** The task reported this progress (not stored: shown to watchers and GetRun). */
  progress(runId: number, step: number, progress: Value): void;
}
