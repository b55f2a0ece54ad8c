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

import { h, type JSX } from "preact";
import { useState } from "preact/hooks";
import { StepKind, StepState, type StepStatus } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { StateBadge } from "../components.js";
import { durationOf, formatTime } from "../format/durations.js";
import { STEP_STATE_ORDER, stepStateName, toneOfStep } from "../format/states.js";
import { ErrorView } from "./error-view.js";
import { ProgressBar } from "./progress-bar.js";
import { branchesOf, branchState, countStates, descendants, isStage, stepLabel, type ChildIndex } from "./step-tree-model.js";

/** Groups with up to this many branches open by themselves. */
const OPEN_UP_TO = 10;
/** Branches rendered per "show more". */
const SHOWN_STEP = 100;
/** Levels of nesting drawn; deeper steps are counted (40 levels already indent 800 px). */
const MAX_DRAWN_DEPTH = 40;

export interface TreeProps {
  index: ChildIndex;
  /** How many containers (groups, DAGs, tasks with a child pipeline) the steps are inside. */
  depth: number;
  /** The clock the durations of running steps are measured against (ticks while the run runs). */
  now: number;
}

export function StepList({ steps, index, now, depth }: { steps: StepStatus[] } & TreeProps): JSX.Element {
  // A recursion thousands of child pipelines deep would be as many nested components (and
  // overflow the stack): past MAX_DRAWN_DEPTH the rest is counted, not drawn.
  if (depth > MAX_DRAWN_DEPTH) {
    const below = descendants(index, steps);
    const byState = countStates(below, (x) => x.state);
    return h(
      "p",
      { class: "note too-deep" },
      `… ${below.length.toLocaleString("en")} more steps nested deeper than ${MAX_DRAWN_DEPTH} levels: `,
      STEP_STATE_ORDER.filter((st) => byState.has(st))
        .map((st) => `${byState.get(st)!.toLocaleString("en")} ${stepStateName(st)}`)
        .join(", "),
    );
  }
  return h(
    "ul",
    { class: "steps" },
    steps.map((step) => h(StepNode, { key: step.stepId, step, index, now, depth })),
  );
}

function StepNode({ step, index, now, depth }: { step: StepStatus } & TreeProps): JSX.Element {
  const state = stepStateName(step.state);
  const children = index.get(step.stepId) ?? [];
  const started = step.state !== StepState.PENDING && step.state !== StepState.QUEUED;
  const failed = step.state === StepState.FAILED || step.state === StepState.CANCELLED;
  // A task-like step with children returned a pipeline: its steps are listed under it.
  const returnedPipeline = step.kind !== StepKind.GROUP && step.kind !== StepKind.DAG && children.length > 0;
  return h(
    "li",
    { class: `step kind-${kindName(step.kind).replace(" ", "-")}`, "data-step-path": step.path, "data-state": state },
    h(
      "div",
      { class: "step-row" },
      h(StateBadge, { name: state, tone: toneOfStep(step.state) }),
      h("span", { class: "label" }, stepLabel(step)),
      returnedPipeline ? h("span", { class: "kind" }, "→ child pipeline") : null,
      step.attempts > 1 ? h("span", { class: "attempts" }, `attempt ${step.attempts}`) : null,
      started ? h("span", { class: "duration" }, durationOf(step.startTime, step.finishTime, now)) : null,
      step.progress && step.state === StepState.RUNNING ? h(ProgressBar, { value: step.progress }) : null,
      step.waitingReason ? h("span", { class: "waiting" }, step.waitingReason) : null,
      // A wait step waiting: until when (a sleep's end, or a signal or event wait's timeout).
      step.kind === StepKind.WAIT && step.state === StepState.WAITING && step.wakeTime
        ? h("span", { class: "waiting wake-time" }, `until ${formatTime(step.wakeTime)}`)
        : null,
      h("span", { class: "path mono" }, step.path),
    ),
    failed && step.error ? h(ErrorView, { error: step.error }) : null,
    step.kind === StepKind.GROUP
      ? h(GroupBody, { group: step, children, index, now, depth: depth + 1 })
      : children.length
        ? h(StepList, { steps: children, index, now, depth: depth + 1 })
        : null,
  );
}

function kindName(kind: StepKind): string {
  return (StepKind[kind] ?? "step").toLowerCase().replace("_", " ");
}

function GroupBody({ group, children, index, now, depth }: { group: StepStatus; children: StepStatus[] } & TreeProps): JSX.Element {
  // A group split in stages (num_stages) has its stages as children, each a group of its own.
  if (children.length && children.every(isStage)) return h(StepList, { steps: children, index, now, depth });
  return h(Branches, { key: group.stepId, children, index, now, depth });
}

function Branches({ children, index, now, depth }: { children: StepStatus[] } & TreeProps): JSX.Element {
  const branches = branchesOf(children);
  const [expanded, setExpanded] = useState<boolean>(branches.length <= OPEN_UP_TO);
  const [shown, setShown] = useState(SHOWN_STEP);
  const counts = countStates(branches, branchState);
  const n = branches.length;
  return h(
    "div",
    { class: "group-body" },
    h(
      "div",
      { class: "group-summary" },
      h(
        "button",
        { type: "button", class: "expand", "aria-expanded": expanded, onClick: () => setExpanded(!expanded) },
        `${expanded ? "▾" : "▸"} ${n.toLocaleString("en")} branch${n === 1 ? "" : "es"}`,
      ),
      STEP_STATE_ORDER.filter((s) => counts.has(s)).map((s) =>
        h(
          "span",
          { class: "state-count", "data-count-state": stepStateName(s) },
          h("span", { class: "n" }, counts.get(s)!.toLocaleString("en")),
          " ",
          h(StateBadge, { name: stepStateName(s), tone: toneOfStep(s) }),
        ),
      ),
    ),
    expanded
      ? h(
          "ol",
          { class: "branches" },
          branches
            .slice(0, shown)
            .map((b) =>
              h(
                "li",
                { key: b.index, class: "branch", "data-branch": b.index },
                h("span", { class: "branch-name" }, `branch ${b.index}`),
                h(StepList, { steps: b.steps, index, now, depth }),
              ),
            ),
        )
      : null,
    expanded && n > shown
      ? h(
          "button",
          { type: "button", class: "show-more", onClick: () => setShown(shown + SHOWN_STEP) },
          `Show ${Math.min(SHOWN_STEP, n - shown)} more (${shown.toLocaleString("en")} of ${n.toLocaleString("en")} shown)`,
        )
      : null,
  );
}
