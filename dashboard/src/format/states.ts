// Names and colours of run and step states, shared by every view.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { RunState, StepState, type Run } from "../../../proto/gen/pipewright/v1/run_pb.js";

export const RUN_STATES: RunState[] = [RunState.RUNNING, RunState.PAUSED, RunState.CANCELLING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED];

/** "RUNNING" for RunState.RUNNING: the name the CLI prints and the tests read in the DOM. */
export function runStateName(s: RunState): string {
  return RunState[s] ?? `STATE_${s}`;
}

export function stepStateName(s: StepState): string {
  return StepState[s] ?? `STATE_${s}`;
}

/**
 * A run's badge: its state, or SCHEDULED for a running run whose delayed start
 * (Run.start_time) is still ahead of `now`.
 */
export function runBadge(run: Pick<Run, "state" | "startTime">, now = Date.now()): { name: string; tone: string; title?: string } {
  if (run.state === RunState.RUNNING && run.startTime && timestampMs(run.startTime) > now)
    return { name: "SCHEDULED", tone: "warn", title: `starts at ${new Date(timestampMs(run.startTime)).toISOString()}` };
  return { name: runStateName(run.state), tone: toneOfRun(run.state) };
}

/** A run that will not change any more. */
export function isFinished(s: RunState): boolean {
  return s === RunState.SUCCEEDED || s === RunState.FAILED || s === RunState.CANCELLED;
}

/** The CSS class of a state badge: one colour per kind of outcome, not per state. */
export function toneOfRun(s: RunState): string {
  switch (s) {
    case RunState.SUCCEEDED:
      return "ok";
    case RunState.FAILED:
      return "bad";
    case RunState.CANCELLED:
    case RunState.CANCELLING:
      return "muted";
    case RunState.PAUSED:
      return "warn";
    default:
      return "active";
  }
}

export function toneOfStep(s: StepState): string {
  switch (s) {
    case StepState.SUCCEEDED:
      return "ok";
    case StepState.FAILED:
      return "bad";
    case StepState.CANCELLED:
    case StepState.SKIPPED:
      return "muted";
    case StepState.RUNNING:
    case StepState.WAITING:
      return "active";
    default:
      return "idle";
  }
}

/** Step states in the order a count line lists them: what needs attention first. */
export const STEP_STATE_ORDER: StepState[] = [
  StepState.FAILED,
  StepState.RUNNING,
  StepState.WAITING,
  StepState.QUEUED,
  StepState.PENDING,
  StepState.SUCCEEDED,
  StepState.SKIPPED,
  StepState.CANCELLED,
  StepState.UNSPECIFIED,
];
