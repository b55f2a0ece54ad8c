// One schedule: its settings, pause / resume / trigger now, and its recent fires (newest
// first, each with the run it started). Settings and fires refresh every ~2 s, and at once
// after an action.

import { h } from "preact";
import { useState } from "preact/hooks";
import type { Schedule, ScheduleFire } from "../../../proto/gen/pipewright/v1/schedule_service_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { DataTable, Pager, RefusalLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { formatTime } from "../format/durations.js";
import { cronText, durationSetting, fireOutcomeBadge, overlapName, scheduleBadge } from "../format/schedules.js";
import { usePoll } from "../use-poll.js";
import { runHref } from "../use-route.js";
import { ScheduleActions } from "./schedule-actions.js";

const FIRES_PER_PAGE = 50;

export function SchedulePage({ scheduleId }: { scheduleId: string }) {
  const connection = useConnection();
  // Bumped by an action: the settings and the fires are read again at once.
  const [changes, setChanges] = useState(0);
  const [fireTokens, setFireTokens] = useState<string[]>([""]);
  const schedule = usePoll((signal) => callUnary(connection, rpc.getSchedule, { scheduleId }, signal), [connection, scheduleId, changes]);
  const fires = usePoll(
    (signal) => callUnary(connection, rpc.listScheduleFires, { scheduleId, pageSize: FIRES_PER_PAGE, pageToken: fireTokens[fireTokens.length - 1] }, signal),
    [connection, scheduleId, fireTokens, changes],
  );
  const s = schedule.data?.schedule;
  return h(
    "section",
    { class: "schedule-page" },
    h("p", null, h("a", { href: "#/schedules" }, "← Schedules")),
    h(RefusalLine, { error: schedule.error, scope: "read", what: "This view" }),
    s
      ? [
          h(ScheduleHeader, { schedule: s }),
          h(ScheduleActions, { schedule: s, onChange: () => setChanges((n) => n + 1) }),
          h("h2", null, "Recent fires"),
          h(RefusalLine, { error: fires.error, scope: "read", what: "This view" }),
          h(DataTable, { cls: "fires", headings: ["Fire time", "Outcome", "Run", "By"] }, (fires.data?.fires ?? []).map(fireRow)),
          fires.data && fires.data.fires.length === 0 ? h("p", { class: "empty" }, "It has not fired yet.") : null,
          h(Pager, { tokens: fireTokens, next: fires.data?.nextPageToken ?? "", onChange: setFireTokens }),
        ]
      : schedule.error
        ? null
        : h("p", { class: "empty" }, "Loading…"),
  );
}

function ScheduleHeader({ schedule: s }: { schedule: Schedule }) {
  const field = (term: string, value: string, cls = "") => [h("dt", null, term), h("dd", { class: cls }, value)];
  return h(
    "div",
    { class: "run-header schedule-header", "data-schedule-id": s.scheduleId },
    h("h1", null, `${s.scheduleId} `, h(StateBadge, scheduleBadge(s))),
    h(
      "dl",
      null,
      field("Cron", cronText(s), "mono cron"),
      field("Overlap", overlapName(s.overlap)),
      field("Catch-up window", durationSetting(s.catchupWindow, "1 min (default)")),
      field("Run name", s.runName || s.scheduleId),
      field("Run timeout", durationSetting(s.runTimeout, "none")),
      field("Next fire", s.paused ? "(paused)" : formatTime(s.nextFireTime) || "none", "next-fire"),
      field("Last fire", formatTime(s.lastFireTime) || "never", "last-fire"),
      field("Created", formatTime(s.createTime)),
      field("Changed", formatTime(s.updateTime)),
    ),
  );
}

function fireRow(f: ScheduleFire) {
  return h(
    "tr",
    { key: f.requestId, "data-request-id": f.requestId },
    h("td", null, formatTime(f.fireTime)),
    h(
      "td",
      null,
      h(StateBadge, { ...fireOutcomeBadge(f.outcome), title: f.reason || undefined }),
      f.reason ? h("span", { class: "reason" }, ` ${f.reason}`) : null,
    ),
    h("td", { class: "mono" }, f.runId ? h("a", { href: runHref(f.runId), class: "run-link" }, f.runId.slice(0, 8)) : ""),
    h("td", null, f.triggered ? "trigger now" : "cron"),
  );
}
