// Counts of runs per state (CountRuns), each a button that filters the list by its state.
// The server stops counting at 10,000 per state (`capped`): shown as "10,000+".

import { h } from "preact";
import { RunState } from "../../../proto/gen/pipewright/v1/run_pb.js";
import type { RunStateCount } from "../../../proto/gen/pipewright/v1/run_service_pb.js";
import { ErrorLine } from "../components.js";
import { RUN_STATES, runStateName, toneOfRun } from "../format/states.js";

export function StateCounts(props: {
  counts: RunStateCount[] | undefined;
  /** Runs whose delayed start is still ahead (CountRunsResponse.scheduled): a button of its own, filtering on it. */
  scheduled?: { count: bigint; capped: boolean };
  error: unknown;
  selected: RunState;
  scheduledSelected: boolean;
  onSelect: (s: RunState) => void;
  onScheduled: (on: boolean) => void;
}) {
  if (props.error !== undefined) return h(ErrorLine, { error: props.error });
  const byState = new Map((props.counts ?? []).map((c) => [c.state, c]));
  return h(
    "div",
    { class: "state-counts" },
    RUN_STATES.map((state) => {
      const c = byState.get(state);
      const name = runStateName(state);
      const chosen = props.selected === state;
      const n = props.counts ? `${Number(c?.count ?? 0n).toLocaleString("en")}${c?.capped ? "+" : ""}` : "…";
      return h(
        "button",
        {
          type: "button",
          class: `count ${toneOfRun(state)}${chosen ? " chosen" : ""}`,
          "data-count-state": name,
          title: chosen ? "show every state" : `show ${name} runs only`,
          onClick: () => props.onSelect(chosen ? RunState.UNSPECIFIED : state),
        },
        h("span", { class: "n" }, n),
        ` ${name}`,
      );
    }),
    props.scheduled && props.scheduled.count > 0n
      ? h(
          "button",
          {
            type: "button",
            class: `count warn${props.scheduledSelected ? " chosen" : ""}`,
            "data-count-state": "SCHEDULED",
            title: props.scheduledSelected ? "show every run" : "show the runs whose delayed start is still ahead",
            onClick: () => props.onScheduled(!props.scheduledSelected),
          },
          h("span", { class: "n" }, `${Number(props.scheduled.count).toLocaleString("en")}${props.scheduled.capped ? "+" : ""}`),
          " SCHEDULED",
        )
      : null,
  );
}
