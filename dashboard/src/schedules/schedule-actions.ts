// Pause, resume and trigger now. Pausing and resuming need the control scope, firing the
// submit scope (it starts a run, as a cron fire does); a refusal says which, in plain words.

import { h } from "preact";
import { useState } from "preact/hooks";
import { ScheduleFireOutcome, type Schedule, type ScheduleFire } from "../../../proto/gen/pipewright/v1/schedule_service_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { RefusalLine } from "../components.js";
import { useConnection } from "../connection-context.js";
import { runHref } from "../use-route.js";

interface Refusal {
  error: unknown;
  scope: string;
  what: string;
}

export function ScheduleActions({ schedule, onChange }: { schedule: Schedule; onChange: () => void }) {
  const connection = useConnection();
  const [busy, setBusy] = useState(false);
  const [refusal, setRefusal] = useState<Refusal>();
  const [fired, setFired] = useState<ScheduleFire>();
  const scheduleId = schedule.scheduleId;

  const act = async (scope: string, what: string, action: () => Promise<void>) => {
    setBusy(true);
    setRefusal(undefined);
    try {
      await action();
      onChange();
    } catch (error) {
      setRefusal({ error, scope, what });
    } finally {
      setBusy(false);
    }
  };
  const button = (name: string, label: string, onClick: () => void) => h("button", { type: "button", name, disabled: busy, onClick }, label);

  return h(
    "div",
    { class: "actions" },
    schedule.paused
      ? button("resume", "Resume", () => act("control", "Resuming a schedule", () => callUnary(connection, rpc.resumeSchedule, { scheduleId }).then(() => {})))
      : button("pause", "Pause", () => act("control", "Pausing a schedule", () => callUnary(connection, rpc.pauseSchedule, { scheduleId }).then(() => {}))),
    button("trigger", "Trigger now", () =>
      act("submit", "Firing a schedule", async () => {
        // One request id per click: a retried request makes one fire; the button is disabled meanwhile.
        const { fire } = await callUnary(connection, rpc.triggerSchedule, { scheduleId, requestId: crypto.randomUUID() });
        setFired(fire);
      }),
    ),
    fired ? h(FiredLine, { fire: fired }) : null,
    refusal ? h(RefusalLine, refusal) : null,
  );
}

function FiredLine({ fire }: { fire: ScheduleFire }) {
  if (fire.outcome === ScheduleFireOutcome.STARTED && fire.runId)
    return h("span", { class: "fired note" }, "Fired: started run ", h("a", { href: runHref(fire.runId) }, fire.runId.slice(0, 8)));
  return h("span", { class: "fired note" }, fire.reason ? `Fired, no run started: ${fire.reason}` : "Fired.");
}
