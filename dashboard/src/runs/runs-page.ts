// The runs list: counts per state, filters by state and name, a page of runs refreshed every
// ~2 s, and keyset paging with ListRuns' next_page_token (the tokens of the pages before are
// kept, so "Previous" goes back without offsets).

import { h } from "preact";
import { useState } from "preact/hooks";
import { RunState, type Run } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { ErrorLine, StateBadge, valueOf } from "../components.js";
import { useConnection } from "../connection-context.js";
import { durationOf, formatTime } from "../format/durations.js";
import { RUN_STATES, runBadge, runStateName } from "../format/states.js";
import { usePoll } from "../use-poll.js";
import { runHref } from "../use-route.js";
import { StateCounts } from "./state-counts.js";

const PAGE_SIZE = 50;

export function RunsPage() {
  const connection = useConnection();
  const [state, setState] = useState<RunState>(RunState.UNSPECIFIED);
  const [scheduled, setScheduled] = useState(false);
  const [name, setName] = useState("");
  const [nameDraft, setNameDraft] = useState("");
  // pageTokens[i] is the token of page i; the first page's is "".
  const [pageTokens, setPageTokens] = useState<string[]>([""]);
  const page = pageTokens.length - 1;

  const filterBy = (next: { state?: RunState; name?: string; scheduled?: boolean }) => {
    if (next.state !== undefined) setState(next.state);
    if (next.scheduled !== undefined) setScheduled(next.scheduled);
    if (next.name !== undefined) setName(next.name);
    setPageTokens([""]);
  };
  const runs = usePoll(
    (signal) =>
      callUnary(
        connection,
        rpc.listRuns,
        { pageSize: PAGE_SIZE, pageToken: pageTokens[page], states: state === RunState.UNSPECIFIED ? [] : [state], name, scheduled },
        signal,
      ),
    [connection, state, name, scheduled, pageTokens],
  );
  const counts = usePoll((signal) => callUnary(connection, rpc.countRuns, {}, signal), [connection]);
  const nextToken = runs.data?.nextPageToken ?? "";

  return h(
    "section",
    { class: "runs-page" },
    h("h1", null, "Runs"),
    h(StateCounts, {
      counts: counts.data?.counts,
      scheduled: counts.data ? { count: counts.data.scheduled, capped: counts.data.scheduledCapped } : undefined,
      error: counts.error,
      selected: state,
      scheduledSelected: scheduled,
      onSelect: (s: RunState) => filterBy({ state: s, scheduled: false }),
      onScheduled: (on: boolean) => filterBy({ scheduled: on, state: RunState.UNSPECIFIED }),
    }),
    h(
      "form",
      {
        class: "filters",
        onSubmit: (e: Event) => {
          e.preventDefault();
          filterBy({ name: nameDraft.trim() });
        },
      },
      h(
        "label",
        null,
        "State ",
        h(
          "select",
          { name: "state", value: String(state), onChange: (e: Event) => filterBy({ state: Number(valueOf(e)) as RunState }) },
          h("option", { value: String(RunState.UNSPECIFIED) }, "all"),
          RUN_STATES.map((s) => h("option", { value: String(s) }, runStateName(s))),
        ),
      ),
      h("label", null, "Name ", h("input", { name: "name", placeholder: "exact name", value: nameDraft, onInput: (e: Event) => setNameDraft(valueOf(e)) })),
      h("button", { type: "submit" }, "Filter"),
    ),
    h(ErrorLine, { error: runs.error }),
    h(
      "table",
      { class: "runs" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["State", "Name", "Started", "Duration", "Id"].map((t) => h("th", null, t)),
        ),
      ),
      h("tbody", null, (runs.data?.runs ?? []).map(runRow)),
    ),
    runs.data && runs.data.runs.length === 0 ? h("p", { class: "empty" }, `No runs${state || name || scheduled ? " match the filters" : ""}.`) : null,
    h(
      "div",
      { class: "pager" },
      h("button", { type: "button", name: "previous", disabled: page === 0, onClick: () => setPageTokens(pageTokens.slice(0, -1)) }, "Previous"),
      h("span", null, `page ${page + 1}`),
      h("button", { type: "button", name: "next", disabled: !nextToken, onClick: () => setPageTokens([...pageTokens, nextToken]) }, "Next"),
    ),
  );
}

function runRow(run: Run) {
  return h(
    "tr",
    { key: run.id, "data-run-id": run.id },
    h("td", null, h(StateBadge, runBadge(run))),
    h("td", null, h("a", { href: runHref(run.id) }, run.name || "(no name)")),
    h("td", null, formatTime(run.createTime)),
    h("td", null, durationOf(run.createTime, run.finishTime)),
    h("td", { class: "mono" }, run.id.slice(0, 8)),
  );
}
