// A run this process owns: its machine in memory, where its log stands, and
// who waits on it or watches it here.

import type { Run, RunEvent } from "@pipewright/protocol";
import type { LongTimeout } from "@pipewright/protocol";
import type { RunMachine } from "../core/run-machine.js";
import type { RunTrace } from "../observe/run-spans.js";

export interface OwnedRun {
  /** Assigned by the database when the batch creating the run is written (0 until then). */
  id: number;
  uid: string;
  requestId: string;
  name: string;
  createdAt: number;
  deadline?: number;
  machine: RunMachine;
  nextSeq: number;
  /** The seq of its last event known committed (read from the log, or written by a batch that committed). */
  committedSeq: number;
  /** Called with the finished run, or with nothing when the run moved to another process. */
  waiters: Set<(run: Run | undefined) => void>;
  listeners: Set<(events: RunEvent[]) => void>;
  timer?: LongTimeout;
  /** Hashes (hex) of the big payloads stored for this run (see core/payload-refs.ts). */
  storedBlobs: Set<string>;
  /** Its spans (observe/run-spans.ts); unset when nothing traces the run. */
  trace?: RunTrace;
}

/** A run as its row and log say (`lastSeq`: its last event's seq; 0 for a new run). */
export function ownedRun(fields: Pick<OwnedRun, "id" | "uid" | "requestId" | "name" | "createdAt" | "deadline" | "machine"> & { lastSeq: number }): OwnedRun {
  const { lastSeq, ...rest } = fields;
  return { ...rest, nextSeq: lastSeq + 1, committedSeq: lastSeq, waiters: new Set(), listeners: new Set(), storedBlobs: new Set() };
}

/** A step of a run, as a map key (new runs have no id yet: the uid names them). */
export const stepKey = (run: OwnedRun, step: number) => `${run.uid}/${step}`;
