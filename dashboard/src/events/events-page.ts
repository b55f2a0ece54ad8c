// The namespace's triggers (EventService.ListTriggers) and its recent events (ListEvents,
// newest first, each with the runs it started). Read-only: triggers are created and events
// published with the client or the CLI. Both lists refresh every ~2 s and page on.

import { h } from "preact";
import { useState } from "preact/hooks";
import type { Event, FilterCondition, Trigger, TriggeredRun } from "../../../proto/gen/pipewright/v1/event_service_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { DataTable, Pager, RefusalLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { formatTime } from "../format/durations.js";
import { usePoll } from "../use-poll.js";
import { runHref } from "../use-route.js";

const PAGE_SIZE = 50;

export function EventsPage() {
  const connection = useConnection();
  const [triggerTokens, setTriggerTokens] = useState<string[]>([""]);
  const [eventTokens, setEventTokens] = useState<string[]>([""]);
  const triggers = usePoll(
    (signal) => callUnary(connection, rpc.listTriggers, { pageSize: PAGE_SIZE, pageToken: triggerTokens[triggerTokens.length - 1] }, signal),
    [connection, triggerTokens],
  );
  const events = usePoll(
    (signal) => callUnary(connection, rpc.listEvents, { pageSize: PAGE_SIZE, pageToken: eventTokens[eventTokens.length - 1] }, signal),
    [connection, eventTokens],
  );
  return h(
    "section",
    { class: "events-page" },
    h("h1", null, "Triggers"),
    h("p", { class: "note" }, "Created with the client or the CLI; each starts a run per matching event."),
    h(RefusalLine, { error: triggers.error, scope: "read", what: "This view" }),
    h(DataTable, { cls: "triggers", headings: ["Id", "Event", "Filter", "State", "Created"] }, (triggers.data?.triggers ?? []).map(triggerRow)),
    triggers.data && triggers.data.triggers.length === 0 ? h("p", { class: "empty" }, "No triggers in this namespace.") : null,
    h(Pager, { tokens: triggerTokens, next: triggers.data?.nextPageToken ?? "", onChange: setTriggerTokens }),
    h("h2", null, "Recent events"),
    h(RefusalLine, { error: events.error, scope: "read", what: "This view" }),
    h(DataTable, { cls: "events", headings: ["Published", "Name", "Id", "Runs started"] }, (events.data?.events ?? []).map(eventRow)),
    events.data && events.data.events.length === 0 ? h("p", { class: "empty" }, "No events published in this namespace.") : null,
    h(Pager, { tokens: eventTokens, next: events.data?.nextPageToken ?? "", onChange: setEventTokens }),
  );
}

/** `region = "eu" and total = 3`; every event of the name when there is no condition. */
export function filterSummary(filter: FilterCondition[]): string {
  if (filter.length === 0) return "every event";
  return filter.map((c) => `${c.path || "(payload)"} = ${c.equals}`).join(" and ");
}

function triggerRow(t: Trigger) {
  return h(
    "tr",
    { key: t.triggerId, "data-trigger-id": t.triggerId },
    h("td", null, t.triggerId),
    h("td", null, t.eventName),
    h("td", { class: "mono filter" }, filterSummary(t.filter)),
    h("td", null, h(StateBadge, t.paused ? { name: "PAUSED", tone: "warn" } : { name: "ACTIVE", tone: "ok" })),
    h("td", null, formatTime(t.createTime)),
  );
}

function eventRow(e: Event) {
  return h(
    "tr",
    { key: e.eventId, "data-event-id": e.eventId },
    h("td", null, formatTime(e.publishTime)),
    h("td", null, e.name),
    h("td", { class: "mono" }, e.eventId),
    h("td", { class: "event-runs" }, e.runs.length ? e.runs.map(triggeredRun) : e.triggerTime ? "none" : "starting…"),
  );
}

function triggeredRun(r: TriggeredRun) {
  return h(
    "span",
    { key: r.triggerId, class: "triggered-run", "data-trigger-id": r.triggerId },
    `${r.triggerId}: `,
    r.runId ? h("a", { href: runHref(r.runId), class: "run-link" }, r.runId.slice(0, 8)) : h("span", { class: "bad-text" }, r.error || "not started"),
  );
}
