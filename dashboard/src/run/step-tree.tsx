// The run's step tree: a step and, under it, what it contains: a group's branches, a DAG's
// nodes, the child pipeline a task returned. StepNode and the group's Branches render each
// other, so they live in one file. Each row carries data-step-path and data-state, which is
// what the browser test (and a curious user's devtools) read.
//
// A group of thousands stays usable: collapsed by default (past OPEN_UP_TO branches) to one
// line of counts per state, and once expanded it renders only the first SHOWN_STEP branches,
// more on demand, so the DOM holds what was asked for and no more.
//
// DAG nodes are drawn as an indented list in declaration order: the run's status does not
// carry the nodes' depends_on (StepStatus has no such field), so no edges are drawn.

import { useState } from "preact/hooks";
import { StepKind, StepState, type StepStatus } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { StateBadge } from "../components.js";
import { durationOf } from "../format/durations.js";
import { STEP_STATE_ORDER, stepStateName, toneOfStep } from "../format/states.js";
import { ErrorView } from "./error-view.js";
import { ProgressBar } from "./progress-bar.js";
import { branchesOf, branchState, countStates, isStage, stepLabel, type ChildIndex } from "./step-tree-model.js";

/** Groups with up to this many branches open by themselves. */
const OPEN_UP_TO = 10;
/** Branches rendered per "show more". */
const SHOWN_STEP = 100;

export interface TreeProps {
  index: ChildIndex;
  /** The clock the durations of running steps are measured against (ticks while the run runs). */
  now: number;
}

export function StepNode({ step, index, now }: { step: StepStatus } & TreeProps) {
  const state = stepStateName(step.state);
  const children = index.get(step.stepId) ?? [];
  const started = step.state !== StepState.PENDING && step.state !== StepState.QUEUED;
  const showError = step.error && (step.state === StepState.FAILED || step.state === StepState.CANCELLED);
  return (
    <li class={`step kind-${StepKind[step.kind]?.toLowerCase() ?? "unknown"}`} data-step-path={step.path} data-state={state}>
      <div class="step-row">
        <StateBadge name={state} tone={toneOfStep(step.state)} />
        <span class="label">{stepLabel(step)}</span>
        {step.kind === StepKind.TASK || step.kind === StepKind.DAG_NODE ? null : <span class="kind">{kindName(step.kind)}</span>}
        {step.attempts > 1 ? <span class="attempts">attempt {step.attempts}</span> : null}
        {started ? <span class="duration">{durationOf(step.startTime, step.finishTime, now)}</span> : null}
        {step.progress && step.state === StepState.RUNNING ? <ProgressBar value={step.progress} /> : null}
        {step.waitingReason ? <span class="waiting">{step.waitingReason}</span> : null}
        <span class="path mono">{step.path}</span>
      </div>
      {showError && step.error ? <ErrorView error={step.error} /> : null}
      {step.kind === StepKind.GROUP ? (
        <GroupBody group={step} children={children} index={index} now={now} />
      ) : children.length ? (
        <StepList steps={children} index={index} now={now} />
      ) : null}
    </li>
  );
}

export function StepList({ steps, index, now }: { steps: StepStatus[] } & TreeProps) {
  return (
    <ul class="steps">
      {steps.map((s) => (
        <StepNode key={s.stepId} step={s} index={index} now={now} />
      ))}
    </ul>
  );
}

function kindName(kind: StepKind): string {
  return (StepKind[kind] ?? "step").toLowerCase().replace("_", " ");
}

export function GroupBody({ group, children, index, now }: { group: StepStatus; children: StepStatus[] } & TreeProps) {
  // A group split in stages (num_stages) has its stages as children, each a group of its own.
  if (children.length && children.every(isStage)) return <StepList steps={children} index={index} now={now} />;
  return <Branches key={group.stepId} children={children} index={index} now={now} />;
}

function Branches({ children, index, now }: { children: StepStatus[] } & TreeProps) {
  const branches = branchesOf(children);
  const [expanded, setExpanded] = useState<boolean>(branches.length <= OPEN_UP_TO);
  const [shown, setShown] = useState(SHOWN_STEP);
  const counts = countStates(branches, branchState);
  return (
    <div class="group-body">
      <div class="group-summary">
        <button type="button" class="expand" aria-expanded={expanded} onClick={() => setExpanded(!expanded)}>
          {expanded ? "▾" : "▸"} {branches.length.toLocaleString("en")} branch{branches.length === 1 ? "" : "es"}
        </button>
        {STEP_STATE_ORDER.filter((s) => counts.has(s)).map((s) => (
          <span class="state-count" data-count-state={stepStateName(s)}>
            <span class="n">{counts.get(s)!.toLocaleString("en")}</span> <StateBadge name={stepStateName(s)} tone={toneOfStep(s)} />
          </span>
        ))}
      </div>
      {expanded ? (
        <ol class="branches">
          {branches.slice(0, shown).map((b) => (
            <li key={b.index} class="branch" data-branch={b.index}>
              <span class="branch-name">branch {b.index}</span>
              <ul class="steps">
                {b.steps.map((s) => (
                  <StepNode key={s.stepId} step={s} index={index} now={now} />
                ))}
              </ul>
            </li>
          ))}
        </ol>
      ) : null}
      {expanded && branches.length > shown ? (
        <button type="button" class="show-more" onClick={() => setShown(shown + SHOWN_STEP)}>
          Show {Math.min(SHOWN_STEP, branches.length - shown)} more ({shown.toLocaleString("en")} of {branches.length.toLocaleString("en")} shown)
        </button>
      ) : null}
    </div>
  );
}
