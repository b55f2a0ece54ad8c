// The public view of a run's steps (RunView FULL), derived from the graph.

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { StepKind, StepState, StepStatusSchema, type StepStatus } from "@pipewright/protocol";
import { TaskErrorSchema, type TaskError } from "@pipewright/protocol";
import { MAX_MESSAGE_BYTES } from "@pipewright/protocol";
import { valueStats } from "@pipewright/protocol";
import type { DagStep, RunGraph, Step, StepCode } from "./run-graph.js";

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
  }
}

/** Bytes of steps a full view lists, at most: half a message, the rest is for the run itself. */
export const STEPS_BUDGET = MAX_MESSAGE_BYTES / 2;

/**
 * One StepStatus per step, in step id order, within `budget` bytes (see
 * Run.steps_truncated): `truncated` says whether some were left out.
 * `running` names the task steps a worker holds right now (the machine only
 * knows they are queued).
 */
export function stepStatuses(graph: RunGraph, running: ReadonlySet<number> = new Set(), budget = STEPS_BUDGET): { steps: StepStatus[]; truncated: boolean } {
  const steps: StepStatus[] = [];
  let used = 0;
  for (let id = 1; id < graph.steps.length; id++) {
    const s = stepStatusOf(graph, id, running);
    // Past a quarter of the budget, errors are listed compact (type, message cut; no stack, details or causes).
    if (s.error && used > budget / 4) s.error = compactError(s.error);
    used += 48 + s.path.length + s.task.length + s.displayName.length + s.dagNodeId.length + (s.error ? valueStats(s.error).bytes : 0);
    if (used > budget) return { steps, truncated: true };
    steps.push(s);
  }
  return { steps, truncated: false };
}

function compactError(e: TaskError): TaskError {
  return create(TaskErrorSchema, { type: e.type, message: e.message.length > 300 ? `${e.message.slice(0, 300)}…` : e.message, origin: e.origin, terminal: e.terminal });
}

/** The StepStatus of one step. */
export function stepStatusOf(graph: RunGraph, id: number, running: ReadonlySet<number> = new Set()): StepStatus {
  const step = graph.steps[id];
  const isTask = step.kind === "task";
  const state = step.status === "queued" && running.has(id) ? StepState.RUNNING : STATE[step.status];
  return create(StepStatusSchema, {
    stepId: id,
    path: graph.pathOf(step),
    kind: kindOf(step),
    task: isTask ? step.call.task : "",
    displayName: isTask ? step.call.options?.displayName || step.call.task : "",
    state,
    attempts: isTask ? step.attempts : 0,
    startTime: step.startedAt !== undefined ? timestampFromMs(step.startedAt) : undefined,
    finishTime: step.finishedAt !== undefined ? timestampFromMs(step.finishedAt) : undefined,
    error: step.error && (step.status === "failed" || step.status === "cancelled") ? step.error : undefined,
    parentStepId: step.parentStep,
    dagNodeId: isTask && step.role === "dag_node" ? (graph.steps[step.dag!] as DagStep).spec.nodes[step.index].id : "",
  });
}
