// One run: its state, times and outcome, the actions, and the live step tree.

import { useEffect, useMemo, useState } from "preact/hooks";
import type { Run } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { ErrorLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { durationOf, formatTime } from "../format/durations.js";
import { isFinished, runStateName, toneOfRun } from "../format/states.js";
import { valueText } from "../format/values.js";
import { ErrorView } from "./error-view.js";
import { RunActions } from "./run-actions.js";
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

  return (
    <section class="run-page">
      <p>
        <a href="#/runs">← Runs</a>
      </p>
      <ErrorLine error={live.error} />
      {run ? (
        <>
          <RunHeader run={run} now={now} />
          <RunActions run={run} onRun={live.setRun} />
          <h2>Steps</h2>
          {run.stepsTruncated ? <p class="note">A very large run: its steps arrive from the watch stream.</p> : null}
          <div class="tree">
            <StepList steps={index.get(0) ?? []} index={index} now={now} />
          </div>
        </>
      ) : live.error ? null : (
        <p class="empty">Loading…</p>
      )}
    </section>
  );
}

function RunHeader({ run, now }: { run: Run; now: number }) {
  const outcome = run.outcome?.kind;
  return (
    <div class="run-header" data-run-id={run.id}>
      <h1>
        {run.name || "(no name)"} <StateBadge name={runStateName(run.state)} tone={toneOfRun(run.state)} />
      </h1>
      <dl>
        <dt>Id</dt>
        <dd class="mono">{run.id}</dd>
        <dt>Namespace</dt>
        <dd>{run.namespace || "default"}</dd>
        <dt>Started</dt>
        <dd>{formatTime(run.createTime)}</dd>
        <dt>Duration</dt>
        <dd>{durationOf(run.createTime, run.finishTime, now)}</dd>
        <dt>Tasks</dt>
        <dd>{run.taskCount.toLocaleString("en")}</dd>
        {outcome?.case === "value" ? (
          <>
            <dt>Result</dt>
            <dd class="mono">{valueText(outcome.value, 500)}</dd>
          </>
        ) : null}
      </dl>
      {outcome?.case === "error" ? <ErrorView error={outcome.value} /> : null}
    </div>
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
