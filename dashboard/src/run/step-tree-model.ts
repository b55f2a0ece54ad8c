// A run's steps as a tree, for the run page: pure functions over the steps known so far (from
// GetRun and then WatchRun events), no DOM. The same data as the CLI's step tree
// (server/cli/step-tree.ts): each step under its group, DAG or task (child pipeline), found by
// parent_step_id; a group's children split into its branches by their paths.
//
// Built once per render from a Map of steps, in O(n log n) for n steps: simpler than an index
// kept up to date event by event, and cheap enough for a 10,000-branch group re-rendered a few
// times a second (the page batches events, see run-page.tsx).

import { StepKind, StepState, type StepStatus } from "../../../proto/gen/pipewright/v1/run_pb.js";

/** Children of every step by parent_step_id (0: the root pipeline), in step_id order. */
export type ChildIndex = Map<number, StepStatus[]>;

export function indexChildren(steps: Iterable<StepStatus>): ChildIndex {
  const index: ChildIndex = new Map();
  for (const s of steps) {
    let list = index.get(s.parentStepId);
    if (!list) index.set(s.parentStepId, (list = []));
    list.push(s);
  }
  for (const list of index.values()) list.sort((a, b) => a.stepId - b.stepId);
  return index;
}

/** `steps` and every step under them, walked without recursion (child pipelines nest thousands deep). */
export function descendants(index: ChildIndex, steps: StepStatus[]): StepStatus[] {
  const out: StepStatus[] = [];
  const stack = [...steps];
  while (stack.length) {
    const s = stack.pop()!;
    out.push(s);
    for (const child of index.get(s.stepId) ?? []) stack.push(child);
  }
  return out;
}

/** One branch of a group: its index in the group and its (top-level) steps in order. */
export interface Branch {
  index: number;
  steps: StepStatus[];
}

/** `…branches[12].steps[0]`: the branch a group's direct child belongs to. */
const BRANCH_OF = /branches\[(\d+)\]\.steps\[\d+\]$/;

/** A group's (or a stage's) children split into branches, in branch order. */
export function branchesOf(children: StepStatus[]): Branch[] {
  const byIndex = new Map<number, Branch>();
  children.forEach((s, position) => {
    const match = BRANCH_OF.exec(s.path);
    // A path cut short for depth (step-paths.ts) may lose the branch: give such a step a branch
    // of its own past the others rather than mixing it into one.
    const index = match ? Number(match[1]) : 1_000_000_000 + position;
    let branch = byIndex.get(index);
    if (!branch) byIndex.set(index, (branch = { index, steps: [] }));
    branch.steps.push(s);
  });
  return [...byIndex.values()].sort((a, b) => a.index - b.index);
}

/** Where a branch is as a whole: a failure first, then work under way, then how it ended. */
export function branchState(branch: Branch): StepState {
  const seen = new Set(branch.steps.map((s) => s.state));
  for (const state of [StepState.FAILED, StepState.RUNNING, StepState.WAITING, StepState.QUEUED, StepState.CANCELLED]) {
    if (seen.has(state)) return state;
  }
  const ended = (s: StepState) => s === StepState.SUCCEEDED || s === StepState.SKIPPED;
  if ([...seen].every(ended)) return seen.size === 1 ? branch.steps[0].state : StepState.SUCCEEDED;
  if ([...seen].every((s) => s === StepState.PENDING)) return StepState.PENDING;
  // Some steps done and the next not yet queued: between two steps, so at work.
  return StepState.RUNNING;
}

/** How many of `items` are in each state. */
export function countStates<T>(items: T[], stateOf: (item: T) => StepState): Map<StepState, number> {
  const counts = new Map<StepState, number>();
  for (const item of items) {
    const s = stateOf(item);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return counts;
}

const FINISHED = new Set([StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED]);

/**
 * The step after a step event. WatchRun sends two kinds of step events: logged ones (seq > 0,
 * committed with the run) and live ones (seq 0: an attempt handed to a worker, its progress;
 * and at the start of a watch, the steps workers hold then), sent when they happen, outside
 * the log's order. So "attempt 1 RUNNING" (live) can arrive before "QUEUED, 0 attempts"
 * (logged, older), and a watch's snapshot "RUNNING" after the logged "SUCCEEDED" of the same
 * attempt. Hence: an event with fewer attempts than known is stale, and a finished step only
 * changes for a later attempt. A retry still shows: it comes back QUEUED with the same count
 * from RUNNING, not from a finished state. An event without progress keeps the known progress
 * (heartbeats send it only when it changes).
 */
export function mergeStep(known: StepStatus | undefined, next: StepStatus): StepStatus {
  if (known && next.attempts < known.attempts) return known;
  if (known && FINISHED.has(known.state) && !FINISHED.has(next.state) && next.attempts <= known.attempts) return known;
  if (known?.progress && !next.progress && next.state === StepState.RUNNING) next.progress = known.progress;
  return next;
}

export { isStage, stepLabel } from "../../../proto/runtime/step-labels.js";
