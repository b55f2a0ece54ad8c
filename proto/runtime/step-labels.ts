// What a step is called when a run's tree of steps is shown: the same words in
// the CLI (`pipewright watch`, `get --steps`) and the dashboard.

import { StepKind, type StepStatus } from "../gen/pipewright/v1/run_pb.js";

/** A group that is one stage of a staged group (its path ends in `.stages[N]`). */
export function isStage(s: Pick<StepStatus, "kind" | "path">): boolean {
  return s.kind === StepKind.GROUP && /\.stages\[\d+\]$/.test(s.path);
}

/** "group", "stage 2", "dag", "load: fetch ← a, b" (a DAG node and what it waits for), a task's display name... */
export function stepLabel(s: StepStatus): string {
  switch (s.kind) {
    case StepKind.GROUP:
      return isStage(s) ? `stage ${s.path.slice(s.path.lastIndexOf("[") + 1, -1)}` : "group";
    case StepKind.DAG:
      return "dag";
    case StepKind.DAG_NODE:
      return `${s.dagNodeId}: ${s.displayName || s.task}${s.dagDependsOn.length ? ` ← ${s.dagDependsOn.join(", ")}` : ""}`;
    case StepKind.EXCEPTIONALLY:
      return `${s.displayName || s.task} (exceptionally)`;
    case StepKind.FINALLY:
      return `${s.displayName || s.task} (finally)`;
    case StepKind.WAIT:
      return s.displayName || s.waitingFor || "wait";
    default:
      return s.displayName || s.task;
  }
}
