// What the engine commits: every input to a run comes as an item, and the
// group committer gathers the items that arrive while a batch is written into
// the next one.

import type { Context } from "@opentelemetry/api";
import type { Pipeline, Run, TaskError, Value } from "@pipewright/protocol";
import type { RunControl } from "../core/run-control.js";
import type { Effect, RunMachine, SignalOutcome } from "../core/run-machine.js";
import type { IncomingResult } from "./ports.js";
import type { OwnedRun } from "./owned-run.js";

/** A submission checked by the API layer, ready to persist. */
export interface PreparedSubmit {
  /** The namespace of the call that submitted it. */
  namespace: string;
  requestId: string;
  requestHash: Uint8Array | null;
  name: string;
  pipeline: Pipeline;
  spec: Uint8Array;
  taskCount: number;
  runTimeoutMs: number;
  /** Delayed start (ms since the epoch): nothing of the run is dispatched before. Unset: at once. */
  startAt?: number;
  /** The submit's span context: the run's span is its child (observe/tracing.ts). */
  traceParent?: Context;
  /** A big run's machine, built and started before its batch (see RunEngine.submit). */
  started?: { machine: RunMachine; effects: Effect[]; createdAt: number };
}

/**
 * A request id as the batch keys it: request ids are unique within a namespace.
 * Always prefixed (unlike namespacedKey, which leaves the default namespace's
 * names bare): a request id may hold any character, so a bare one could look
 * like another namespace's key.
 */
export function requestKey(namespace: string, requestId: string): string {
  return `${namespace}\u001f${requestId}`;
}

/** When a submitted run starts: its creation, or its delayed start when that is later. */
export function startOf(p: Pick<PreparedSubmit, "startAt">, createdAt: number): number {
  return p.startAt !== undefined && p.startAt > createdAt ? p.startAt : createdAt;
}

export interface SubmitOutcome {
  run: Run;
  existing: boolean;
}

export type SubmitItem = { kind: "submit"; batch: PreparedSubmit[]; resolve: (r: SubmitOutcome[]) => void; reject: (e: unknown) => void };
/** A signal's content (RunService.SignalRun). */
export interface SignalSent {
  name: string;
  payload: Value;
  /** SignalRunRequest.signal_id: a repeat is applied once. */
  id?: string;
}

export type ControlItem = {
  kind: "control";
  uid: string;
  action: RunControl;
  reason: string;
  /** For action "signal". */
  signal?: SignalSent;
  /** `signal`: what a signal did, for action "signal" applied here. */
  resolve: (run: Run, signal?: SignalOutcome) => void;
  reject: (e: unknown) => void;
};

export type Item =
  | SubmitItem
  | { kind: "result"; result: IncomingResult }
  | ControlItem
  /** Look at this process's inbox (a notification came, or the periodic check). */
  | { kind: "inbox" }
  /** End a run FAILED with this error (it cannot go on: see RunMachine.abandon). */
  | { kind: "abandon"; runId: number; error: TaskError }
  /** Park a run that only waits (engine/parking.ts). */
  | { kind: "park"; run: OwnedRun };

/** Items of one run are committed in order: one batch in flight per run. `idOf`: a held run's id by uid. */
export function orderKey(item: Item, idOf: (uid: string) => number | undefined): string | undefined {
  switch (item.kind) {
    case "submit":
      return undefined;
    case "result":
      return `run:${item.result.runId}`;
    case "control": {
      const id = idOf(item.uid);
      return id ? `run:${id}` : `uid:${item.uid}`;
    }
    case "inbox":
      return "inbox";
    case "abandon":
      return `run:${item.runId}`;
    case "park":
      return `run:${item.run.id}`;
  }
}
