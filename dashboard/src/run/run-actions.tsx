// The buttons of a run, shown by its state: pause and cancel while it runs, resume and cancel
// while paused, resubmit once it has finished (then the page moves to the new run). A refused
// action (a token without the control or submit scope, a run that moved on) shows the
// server's message.

import { useRef, useState } from "preact/hooks";
import { RunState, type Run } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { ErrorLine } from "../components.js";
import { useConnection } from "../connection-context.js";
import { isFinished } from "../format/states.js";
import { runHref } from "../use-route.js";

export function RunActions({ run, onRun }: { run: Run; onRun: (run: Run) => void }) {
  const connection = useConnection();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  // One request id per resubmit intent: a double click or a retry after a timeout makes one run.
  const resubmitId = useRef(crypto.randomUUID());

  const act = async (action: () => Promise<Run | undefined>) => {
    setBusy(true);
    setError(undefined);
    try {
      const next = await action();
      if (next) onRun(next);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const runId = run.id;
  const cancel = () => act(async () => (await callUnary(connection, rpc.cancelRun, { runId, reason: "cancelled from the dashboard" })).run);
  const pause = () => act(async () => (await callUnary(connection, rpc.pauseRun, { runId })).run);
  const resume = () => act(async () => (await callUnary(connection, rpc.resumeRun, { runId })).run);
  const resubmit = () =>
    act(async () => {
      const { run: fresh } = await callUnary(connection, rpc.resubmitRun, { runId, requestId: resubmitId.current });
      if (fresh) location.hash = runHref(fresh.id);
      return undefined;
    });

  return (
    <div class="actions">
      {run.state === RunState.RUNNING ? (
        <button type="button" name="pause" disabled={busy} onClick={pause}>
          Pause
        </button>
      ) : null}
      {run.state === RunState.PAUSED ? (
        <button type="button" name="resume" disabled={busy} onClick={resume}>
          Resume
        </button>
      ) : null}
      {run.state === RunState.RUNNING || run.state === RunState.PAUSED ? (
        <button type="button" name="cancel" class="danger" disabled={busy} onClick={cancel}>
          Cancel
        </button>
      ) : null}
      {isFinished(run.state) ? (
        <button type="button" name="resubmit" disabled={busy} onClick={resubmit}>
          Resubmit
        </button>
      ) : null}
      <ErrorLine error={error} />
    </div>
  );
}
