// The namespace's schedules (ScheduleService.ListSchedules, by id), refreshed every ~2 s and
// paged with next_page_token like the runs list. A schedule's id opens its page.

import { h } from "preact";
import { useState } from "preact/hooks";
import type { Schedule } from "../../../proto/gen/pipewright/v1/schedule_service_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { DataTable, Pager, RefusalLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { formatTime } from "../format/durations.js";
import { cronText, overlapName, scheduleBadge } from "../format/schedules.js";
import { usePoll } from "../use-poll.js";
import { scheduleHref } from "../use-route.js";

const PAGE_SIZE = 50;

export function SchedulesPage() {
  const connection = useConnection();
  // pageTokens[i] is the token of page i; the first page's is "".
  const [pageTokens, setPageTokens] = useState<string[]>([""]);
  const list = usePoll(
    (signal) => callUnary(connection, rpc.listSchedules, { pageSize: PAGE_SIZE, pageToken: pageTokens[pageTokens.length - 1] }, signal),
    [connection, pageTokens],
  );
  const schedules = list.data?.schedules ?? [];
  return h(
    "section",
    { class: "schedules-page" },
    h("h1", null, "Schedules"),
    h("p", { class: "note" }, "Created and changed with the client or the CLI (pipewright schedule …); paused, resumed and fired here."),
    h(RefusalLine, { error: list.error, scope: "read", what: "This view" }),
    h(DataTable, { cls: "schedules", headings: ["Id", "Cron", "Overlap", "State", "Next fire", "Last fire"] }, schedules.map(scheduleRow)),
    list.data && schedules.length === 0 ? h("p", { class: "empty" }, "No schedules in this namespace.") : null,
    h(Pager, { tokens: pageTokens, next: list.data?.nextPageToken ?? "", onChange: setPageTokens }),
  );
}

function scheduleRow(s: Schedule) {
  return h(
    "tr",
    { key: s.scheduleId, "data-schedule-id": s.scheduleId },
    h("td", null, h("a", { href: scheduleHref(s.scheduleId) }, s.scheduleId)),
    h("td", { class: "mono cron" }, cronText(s)),
    h("td", null, overlapName(s.overlap)),
    h("td", null, h(StateBadge, scheduleBadge(s))),
    h("td", { class: "next-fire" }, formatTime(s.nextFireTime)),
    h("td", { class: "last-fire" }, formatTime(s.lastFireTime)),
  );
}
