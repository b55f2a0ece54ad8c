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
  /** Its namespace: its queues are that namespace's (core/queue-keys.ts). */
  namespace: string;
  requestId: string;
  name: string;
  createdAt: number;
  /** When it starts: its creation, or later for a delayed start (SubmitRunRequest.start_time). */
  startAt: number;
  deadline?: number;
  machine: RunMachine;
  nextSeq: number;
  /** The seq of its last event known committed (read from the log, or written by a batch that committed). */
  committedSeq: number;
  /** Called with the finished run, or with nothing when the run moved to another process. */
  waiters: Set<(run: Run | undefined) => void>;
  listeners: Set<(events: RunEvent[]) => void>;
  /** Live step events (a worker took an attempt) heard while a batch of the run is being committed: sent after its events. */
  heldLive: RunEvent[] | undefined;
  timer?: LongTimeout;
  /** Fires when the run's next wait ends by itself or times out (RunMachine.nextWakeAt), at `wakeAt`. */
  wakeTimer?: LongTimeout;
  wakeAt?: number;
  /** A park of the run was asked of the committer and is not done yet (engine/parking.ts). */
  parking: boolean;
  /** Hashes (hex) of the big payloads stored for this run (see core/payload-refs.ts). */
  storedBlobs: Set<string>;
  /** Its spans (observe/run-spans.ts); unset when nothing traces the run. */
  trace?: RunTrace;
}

/** A run as its row and log say (`lastSeq`: its last event's seq; 0 for a new run). */
export function ownedRun(
  fields: Pick<OwnedRun, "id" | "uid" | "namespace" | "requestId" | "name" | "createdAt" | "startAt" | "deadline" | "machine"> & { lastSeq: number },
): OwnedRun {
  // A literal with every field, in one order: all runs share one hidden class. Built with
  // rest and spread instead, runs came out in V8's slow dictionary mode, and every access to
  // a run in the commit path got slower (~15% of throughput).
  return {
    id: fields.id,
    uid: fields.uid,
    namespace: fields.namespace,
    requestId: fields.requestId,
    name: fields.name,
    createdAt: fields.createdAt,
    startAt: fields.startAt,
    deadline: fields.deadline,
    machine: fields.machine,
    nextSeq: fields.lastSeq + 1,
    committedSeq: fields.lastSeq,
    waiters: new Set(),
    listeners: new Set(),
    heldLive: undefined,
    timer: undefined,
    wakeTimer: undefined,
    wakeAt: undefined,
    parking: false,
    storedBlobs: new Set(),
    trace: undefined, // set once the run's spans start (observe/run-spans.ts): the slot is in the literal, so the class stays one
  };
}

/** A step of a run, as a map key (new runs have no id yet: the uid names them). */
export const stepKey = (run: OwnedRun, step: number) => `${run.uid}/${step}`;
