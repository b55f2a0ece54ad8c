// The public view of a run's steps (RunView FULL), derived from the graph.

import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { StepKind, StepState, StepStatusSchema, type StepStatus } from "@pipewright/protocol";
import { TaskErrorSchema, type TaskError, type Value } from "@pipewright/protocol";
import { MAX_MESSAGE_BYTES } from "@pipewright/protocol";
import { valueStats } from "@pipewright/protocol";
import type { DagStep, RunGraph, Step, StepCode, TaskStep, WaitStep } from "./run-graph.js";

const STATE: Record<StepCode, StepState> = {
  pending: StepState.PENDING,
  queued: StepState.QUEUED,
  waiting: StepState.WAITING,
  succeeded: StepState.SUCCEEDED,
  failed: StepState.FAILED,
  skipped: StepState.SKIPPED,
  cancelled: StepState.CANCELLED,
};

function kindOf(step: Step): StepKind {
  switch (step.kind) {
    case "task":
      return { task: StepKind.TASK, exceptionally: StepKind.EXCEPTIONALLY, finally: StepKind.FINALLY, dag_node: StepKind.DAG_NODE }[step.role];
    case "group":
    case "stage":
      return StepKind.GROUP;
    case "dag":
      return StepKind.DAG;
    case "wait":
      return StepKind.WAIT;
  }
}

/** What a wait step waits for, in words: "sleep 5m", "until 2026-12-01T09:00:00.000Z", "signal approve", "event order.paid". */
export function waitingFor(step: WaitStep): string {
  const c = step.spec.condition;
  switch (c.case) {
    case "duration":
      return `sleep ${formatMs(durationMs(c.value))}`;
    case "time":
      return `until ${timestampDate(c.value).toISOString()}`;
    case "signal":
    case "event":
      return `${c.case} ${c.value}`;
    default:
      return "wait";
  }
}

function formatMs(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Bytes of steps a full view lists, at most: half a message, the rest is for the run itself. */
export const STEPS_BUDGET = MAX_MESSAGE_BYTES / 2;

/**
 * One StepStatus per step, in step id order, within `budget` bytes (see
 * Run.steps_truncated): `truncated` says whether some were left out.
 * `running` names the task steps a worker holds right now (the machine only
 * knows they are queued).
 */
/** What the server knows of running and waiting tasks besides the run's graph. */
export interface LiveState {
  /** Task steps a worker holds right now (the machine only knows they are queued). */
  running: ReadonlySet<number>;
  /** The latest progress of running steps, by step. */
  progress?: ReadonlyMap<number, Value>;
  /** Why a queued task is not running yet, if the server knows (no worker serves it). */
  waitingReason?: (step: TaskStep) => string | undefined;
}

export function stepStatuses(graph: RunGraph, live: LiveState = { running: new Set() }, budget = STEPS_BUDGET): { steps: StepStatus[]; truncated: boolean } {
  const steps: StepStatus[] = [];
  let used = 0;
  for (let id = 1; id < graph.steps.length; id++) {
    const s = stepStatusOf(graph, id, live);
    // Past a quarter of the budget, errors are listed compact (type, message cut; no stack, details or causes).
    if (s.error && used > budget / 4) s.error = compactError(s.error);
    used += 48 + s.path.length + s.task.length + s.displayName.length + s.dagNodeId.length + (s.error ? valueStats(s.error).bytes : 0);
    for (const d of s.dagDependsOn) used += 2 + d.length;
    if (used > budget) return { steps, truncated: true };
    steps.push(s);
  }
  return { steps, truncated: false };
}

function compactError(e: TaskError): TaskError {
  return create(TaskErrorSchema, {
    type: e.type,
    message: e.message.length > 300 ? `${e.message.slice(0, 300)}…` : e.message,
    origin: e.origin,
    terminal: e.terminal,
  });
}

/** The StepStatus of one step. */
export function stepStatusOf(graph: RunGraph, id: number, live: LiveState = { running: new Set() }): StepStatus {
  const step = graph.steps[id];
  const isTask = step.kind === "task";
  const state = step.status === "queued" && live.running.has(id) ? StepState.RUNNING : STATE[step.status];
  // A queued attempt has not started: it is not counted, and a step none of whose attempts started has no start time.
  const attempts = isTask ? step.attempts - (state === StepState.QUEUED ? 1 : 0) : 0;
  const started = step.startedAt !== undefined && !(isTask && attempts === 0 && state === StepState.QUEUED);
  const dagNode = isTask && step.role === "dag_node" ? (graph.steps[step.dag!] as DagStep).spec.nodes[step.index] : undefined;
  const wait = step.kind === "wait" ? step : undefined;
  return create(StepStatusSchema, {
    stepId: id,
    path: graph.pathOf(step),
    kind: kindOf(step),
    task: isTask ? step.call.task : "",
    displayName: isTask ? step.call.options?.displayName || step.call.task : wait ? wait.spec.displayName || waitingFor(wait) : "",
    state,
    attempts,
    startTime: started ? timestampFromMs(step.startedAt!) : undefined,
    finishTime: step.finishedAt !== undefined ? timestampFromMs(step.finishedAt) : undefined,
    error: step.error && (step.status === "failed" || step.status === "cancelled") ? step.error : undefined,
    parentStepId: step.parentStep,
    dagNodeId: dagNode?.id ?? "",
    dagDependsOn: dagNode?.dependsOn ?? [],
    progress: state === StepState.RUNNING ? live.progress?.get(id) : undefined,
    waitingReason: isTask && state === StepState.QUEUED ? (live.waitingReason?.(step) ?? "") : "",
    wakeTime: wait?.status === "waiting" && wait.wakeAt !== undefined ? timestampFromMs(wait.wakeAt) : undefined,
    waitingFor: wait ? waitingFor(wait) : "",
  });
}
