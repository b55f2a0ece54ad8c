// One run: its state, times and outcome, the actions, and the live step tree.

import { h } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { StepKind, StepState, type Run, type StepStatus } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { ErrorLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { durationOf, formatTime } from "../format/durations.js";
import { isFinished, runBadge } from "../format/states.js";
import { valueText } from "../format/values.js";
import { ErrorView } from "./error-view.js";
import { RunActions } from "./run-actions.js";
import { SignalPanel, signalNameOf } from "./signal-form.js";
import { StepList } from "./step-tree.js";
import { indexChildren } from "./step-tree-model.js";
import { useRunWatch } from "./use-run-watch.js";

export function RunPage({ runId }: { runId: string }) {
  const connection = useConnection();
  const live = useRunWatch(connection, runId);
  const { run } = live;
  const now = useClock(run !== undefined && !isFinished(run.state));
  // `version` changes when events were applied to the (mutable) steps map.
  const index = useMemo(() => indexChildren(live.steps.values()), [live.version]);
  const signals = useMemo(() => waitedSignals(live.steps.values()), [live.version]);

  return h(
    "section",
    { class: "run-page" },
    h("p", null, h("a", { href: "#/runs" }, "← Runs")),
    h(ErrorLine, { error: live.error }),
    run
      ? [
          h(RunHeader, { run, now }),
          h(RunActions, { run, onRun: live.setRun }),
          // A form per signal a wait step waits for (usually one), and the answer to the last one sent.
          h(SignalPanel, { run, names: isFinished(run.state) ? [] : signals, onRun: live.setRun }),
          h("h2", null, "Steps"),
          run.stepsTruncated ? h("p", { class: "note" }, "A very large run: its steps arrive from the watch stream.") : null,
          h("div", { class: "tree" }, h(StepList, { steps: index.get(0) ?? [], index, now, depth: 0 })),
        ]
      : live.error
        ? null
        : h("p", { class: "empty" }, "Loading…"),
  );
}

/** The names of the signals the run's WAITING wait steps wait for, each once. */
function waitedSignals(steps: Iterable<StepStatus>): string[] {
  const names = new Set<string>();
  for (const step of steps) {
    const name = step.kind === StepKind.WAIT && step.state === StepState.WAITING ? signalNameOf(step.waitingFor) : undefined;
    if (name) names.add(name);
  }
  return [...names];
}

function RunHeader({ run, now }: { run: Run; now: number }) {
  const outcome = run.outcome?.kind;
  const field = (term: string, value: string, cls = "") => [h("dt", null, term), h("dd", { class: cls }, value)];
  return h(
    "div",
    { class: "run-header", "data-run-id": run.id },
    h("h1", null, `${run.name || "(no name)"} `, h(StateBadge, runBadge(run))),
    h(
      "dl",
      null,
      field("Id", run.id, "mono"),
      field("Namespace", run.namespace || "default"),
      field("Started", formatTime(run.createTime)),
      field("Duration", durationOf(run.createTime, run.finishTime, now)),
      field("Tasks", run.taskCount.toLocaleString("en")),
      outcome?.case === "value" ? field("Result", valueText(outcome.value, 500), "mono") : null,
    ),
    outcome?.case === "error" ? h(ErrorView, { error: outcome.value }) : null,
  );
}

/** Date.now(), refreshed every second while `ticking` (running steps' durations grow). */
function useClock(ticking: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!ticking) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  return ticking ? now : Date.now();
}
