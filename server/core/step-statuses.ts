// The public view of a run's steps (RunView FULL), derived from the graph.

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { StepKind, StepState, StepStatusSchema, type StepStatus } from "../../proto/gen/pipewright/v1/run_pb.js";
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

/**
 * One StepStatus per step, in step id order. `running` names the task steps a
 * worker holds right now (the machine only knows they are queued).
 */
export function stepStatuses(graph: RunGraph, running: ReadonlySet<number> = new Set()): StepStatus[] {
  const out: StepStatus[] = [];
  for (let id = 1; id < graph.steps.length; id++) out.push(stepStatusOf(graph, id, running));
  return out;
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
