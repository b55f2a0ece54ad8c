// A run's steps as a tree of lines, for `pipewright get --steps` and
// `pipewright watch`: each step under its group, DAG or task (a child
// pipeline), with a state symbol, its task, attempt, duration, progress and
// error. A group of thousands of branches shows a dozen (those failing or at
// work first) and counts the rest by state, so the tree stays readable.

import { stepLabel } from "@pipewright/protocol";
import { decodeValue, StepKind, StepState, type StepStatus, type Value } from "@pipewright/protocol";
import { formatError, runDuration, stepStateName } from "./output.js";

const SYMBOL: Record<StepState, string> = {
  [StepState.UNSPECIFIED]: "?",
  [StepState.PENDING]: "·",
  [StepState.QUEUED]: "○",
  [StepState.RUNNING]: "▶",
  [StepState.WAITING]: "…",
  [StepState.SUCCEEDED]: "✓",
  [StepState.FAILED]: "✗",
  [StepState.SKIPPED]: "-",
  [StepState.CANCELLED]: "⊘",
};

/** Children shown per parent before the rest are only counted. */
const SHOWN_CHILDREN = 12;

export function symbolOf(state: StepState): string {
  return SYMBOL[state] ?? "?";
}

/** The steps of a run by id, kept up to date from WatchRun step events. */
export class StepTree {
  readonly steps = new Map<number, StepStatus>();

  constructor(steps: StepStatus[] = []) {
    for (const s of steps) this.steps.set(s.stepId, s);
  }

  update(s: StepStatus): void {
    const known = this.steps.get(s.stepId);
    // A step event without progress keeps the progress known (heartbeats send it only when it changes).
    if (known?.progress && !s.progress && s.state === StepState.RUNNING) s.progress = known.progress;
    this.steps.set(s.stepId, s);
  }

  /** The tree as lines, indented two spaces a level. */
  lines(now = Date.now()): string[] {
    const children = new Map<number, StepStatus[]>();
    for (const s of [...this.steps.values()].sort((a, b) => a.stepId - b.stepId)) {
      let list = children.get(s.parentStepId);
      if (!list) children.set(s.parentStepId, (list = []));
      list.push(s);
    }
    const out: string[] = [];
    // Iterative depth-first walk: a chain of thousands of child pipelines is deep.
    const stack: { step: StepStatus | "more"; depth: number; rest?: StepStatus[] }[] = [];
    const pushChildren = (parent: number, depth: number) => {
      const list = children.get(parent) ?? [];
      const [shown, rest] = list.length > SHOWN_CHILDREN + 1 ? pickShown(list) : [list, []];
      const items: typeof stack = shown.map((step) => ({ step, depth }));
      if (rest.length) items.push({ step: "more", depth, rest });
      for (let i = items.length - 1; i >= 0; i--) stack.push(items[i]);
    };
    pushChildren(0, 0);
    while (stack.length) {
      const { step, depth, rest } = stack.pop()!;
      const indent = "  ".repeat(depth);
      if (step === "more") {
        out.push(`${indent}… ${rest!.length} more: ${countByState(rest!)}`);
        continue;
      }
      out.push(indent + stepLine(step, now));
      pushChildren(step.stepId, depth + 1);
    }
    return out;
  }
}

/** Which steps a watcher most wants to see, first: what failed, then what is at work. */
const INTEREST: Partial<Record<StepState, number>> = { [StepState.FAILED]: 0, [StepState.RUNNING]: 1, [StepState.WAITING]: 2, [StepState.CANCELLED]: 3 };

/** SHOWN_CHILDREN of a long list of siblings (the most interesting, kept in their order) and the rest. */
function pickShown(list: StepStatus[]): [StepStatus[], StepStatus[]] {
  const rank = (s: StepStatus) => INTEREST[s.state] ?? 4;
  const byInterest = list.map((s, i) => i).sort((a, b) => rank(list[a]) - rank(list[b]) || a - b);
  const keep = new Set(byInterest.slice(0, SHOWN_CHILDREN));
  return [list.filter((_, i) => keep.has(i)), list.filter((_, i) => !keep.has(i))];
}

/** "9,980 ✓  12 ▶  8 ○" for a slice of siblings (by their own state). */
function countByState(steps: StepStatus[]): string {
  const counts = new Map<StepState, number>();
  for (const s of steps) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([state, n]) => `${n.toLocaleString("en")} ${symbolOf(state)}`)
    .join("  ");
}

/** One step: symbol, what it is, state, attempt, duration, progress, error. */
export function stepLine(s: StepStatus, now = Date.now()): string {
  const parts = [symbolOf(s.state), stepLabel(s), stepStateName(s.state)];
  if (s.attempts > 1) parts.push(`attempt ${s.attempts}`);
  const took = runDuration(s.startTime, s.finishTime, now);
  if (took && s.state !== StepState.PENDING && s.state !== StepState.QUEUED) parts.push(took);
  if (s.progress && s.state === StepState.RUNNING) parts.push(progressText(s.progress));
  if (s.waitingReason) parts.push(`(${s.waitingReason})`);
  if (s.error && (s.state === StepState.FAILED || s.state === StepState.CANCELLED)) parts.push(`— ${formatError(s.error)}`);
  return parts.join(" ");
}

/** A bar when the progress says how far (a fraction, or {done, total}), else the progress as JSON. */
export function progressText(v: Value): string {
  let p: unknown;
  try {
    p = decodeValue(v);
  } catch {
    return "[progress]";
  }
  const fraction = fractionOf(p);
  if (fraction === undefined) {
    const text = JSON.stringify(p) ?? "";
    return text.length > 40 ? `${text.slice(0, 40)}…` : text;
  }
  const width = 16;
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  const o = p as { done?: number; total?: number };
  const counts = typeof o === "object" && o && typeof o.done === "number" && typeof o.total === "number" ? ` ${o.done}/${o.total}` : "";
  return `[${"█".repeat(full)}${"░".repeat(width - full)}] ${Math.round(fraction * 100)}%${counts}`;
}

function fractionOf(p: unknown): number | undefined {
  if (typeof p === "number" && p >= 0 && p <= 1) return p;
  if (p && typeof p === "object") {
    const o = p as Record<string, unknown>;
    const done = o.done ?? o.current ?? o.completed;
    if (typeof done === "number" && typeof o.total === "number" && o.total > 0) return done / o.total;
    if (typeof o.percent === "number") return o.percent / 100;
  }
  return undefined;
}
