// The buttons of a run, shown by its state: pause and cancel while it runs, resume and cancel
// while paused, resubmit once it has finished (then the page moves to the new run). A refused
// action (a token without the control or submit scope, a run that moved on) shows the
// server's message.

import { h } from "preact";
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
  const button = (name: string, label: string, onClick: () => void, extra = "") =>
    h("button", { type: "button", name, class: extra, disabled: busy, onClick }, label);
  const active = run.state === RunState.RUNNING || run.state === RunState.PAUSED;

  return h(
    "div",
    { class: "actions" },
    run.state === RunState.RUNNING ? button("pause", "Pause", () => act(async () => (await callUnary(connection, rpc.pauseRun, { runId })).run)) : null,
    run.state === RunState.PAUSED ? button("resume", "Resume", () => act(async () => (await callUnary(connection, rpc.resumeRun, { runId })).run)) : null,
    active
      ? button(
          "cancel",
          "Cancel",
          () => act(async () => (await callUnary(connection, rpc.cancelRun, { runId, reason: "cancelled from the dashboard" })).run),
          "danger",
        )
      : null,
    isFinished(run.state)
      ? button("resubmit", "Resubmit", () =>
          act(async () => {
            const { run: fresh } = await callUnary(connection, rpc.resubmitRun, { runId, requestId: resubmitId.current });
            if (fresh) location.hash = runHref(fresh.id);
            return undefined;
          }),
        )
      : null,
    h(ErrorLine, { error }),
  );
}
