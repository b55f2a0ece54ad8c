// Which controls a run accepts in which state: written once, used by the run
// machine, by the engine before it commits a control, by a process forwarding
// one to the run's owner, and by the owner applying what its inbox brings.
// A refused control changes nothing and is answered FAILED_PRECONDITION with
// the reason below.

import { RunState } from "@pipewright/protocol";

export type RunControl = "cancel" | "pause" | "resume" | "timeout" | "signal" | "wake";

/** The controls only the server itself applies (a deadline passed, a wait's time came): nobody is answered. */
export const INTERNAL_CONTROLS: ReadonlySet<RunControl> = new Set(["timeout", "wake"]);

/** The states a control is judged in (every finished state is "finished"). */
export type ControlledState = "running" | "paused" | "cancelling" | "finished";

/** Accepted, or the reason it is refused (completing "run <id> ..."). */
type Verdict = true | string;

const TABLE: Record<ControlledState, Record<RunControl, Verdict>> = {
  // A paused run takes signals (kept, or ending a wait whose next step is then held) and its waits go on ending.
  running: { cancel: true, pause: true, resume: "is not paused", timeout: true, signal: true, wake: true },
  paused: { cancel: true, pause: "is already paused", resume: true, timeout: true, signal: true, wake: true },
  // A second cancel, or the deadline passing while cancelling, changes nothing but is no error:
  // the caller wanted the run to stop, and it is stopping.
  cancelling: {
    cancel: true,
    pause: "is being cancelled, it cannot be paused",
    resume: "is being cancelled, it cannot be resumed",
    timeout: true,
    signal: "is being cancelled: no wait step can take a signal any more",
    wake: true,
  },
  finished: {
    cancel: "has already finished",
    pause: "has already finished",
    resume: "has already finished",
    timeout: "has already finished",
    signal: "has already finished: a signal can no longer reach it",
    wake: "has already finished",
  },
};

export function controlledState(state: RunState): ControlledState {
  switch (state) {
    case RunState.PAUSED:
      return "paused";
    case RunState.CANCELLING:
      return "cancelling";
    case RunState.RUNNING:
    case RunState.UNSPECIFIED:
      return "running";
    default:
      return "finished";
  }
}

/** Undefined if a run in `state` accepts `action`; else why not, as a sentence about run `uid`. */
export function controlRefusal(state: RunState, action: RunControl, uid: string): string | undefined {
  const verdict = TABLE[controlledState(state)][action];
  return verdict === true ? undefined : `run ${uid} ${verdict}`;
}

/** Whether a run in `state` accepts `action`. */
export function accepts(state: RunState, action: RunControl): boolean {
  return TABLE[controlledState(state)][action] === true;
}
