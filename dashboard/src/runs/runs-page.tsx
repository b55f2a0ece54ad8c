// The runs list: counts per state, filters by state and name, a page of runs refreshed every
// ~2 s, and keyset paging with ListRuns' next_page_token (the tokens of the pages before are
// kept, so "Previous" goes back without offsets).

import { useState } from "preact/hooks";
import { RunState } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { ErrorLine, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { durationOf, formatTime } from "../format/durations.js";
import { RUN_STATES, runStateName, toneOfRun } from "../format/states.js";
import { usePoll } from "../use-poll.js";
import { runHref } from "../use-route.js";
import { StateCounts } from "./state-counts.js";

const PAGE_SIZE = 50;

export function RunsPage() {
  const connection = useConnection();
  const [state, setState] = useState<RunState>(RunState.UNSPECIFIED);
  const [name, setName] = useState("");
  const [nameDraft, setNameDraft] = useState("");
  // pageTokens[i] is the token of page i; the first page's is "".
  const [pageTokens, setPageTokens] = useState<string[]>([""]);
  const page = pageTokens.length - 1;

  const filterBy = (next: { state?: RunState; name?: string }) => {
    if (next.state !== undefined) setState(next.state);
    if (next.name !== undefined) setName(next.name);
    setPageTokens([""]);
  };

  const runs = usePoll(
    (signal) =>
      callUnary(
        connection,
        rpc.listRuns,
        { pageSize: PAGE_SIZE, pageToken: pageTokens[page], states: state === RunState.UNSPECIFIED ? [] : [state], name },
        signal,
      ),
    [connection, state, name, pageTokens],
  );
  const counts = usePoll((signal) => callUnary(connection, rpc.countRuns, {}, signal), [connection]);

  return (
    <section class="runs-page">
      <h1>Runs</h1>
      <StateCounts counts={counts.data?.counts} error={counts.error} selected={state} onSelect={(s) => filterBy({ state: s })} />
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          filterBy({ name: nameDraft.trim() });
        }}
      >
        <label>
          State
          <select name="state" value={String(state)} onChange={(e) => filterBy({ state: Number(e.currentTarget.value) as RunState })}>
            <option value={String(RunState.UNSPECIFIED)}>all</option>
            {RUN_STATES.map((s) => (
              <option value={String(s)}>{runStateName(s)}</option>
            ))}
          </select>
        </label>
        <label>
          Name
          <input name="name" placeholder="exact name" value={nameDraft} onInput={(e) => setNameDraft(e.currentTarget.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorLine error={runs.error} />
      <table class="runs">
        <thead>
          <tr>
            <th>State</th>
            <th>Name</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Id</th>
          </tr>
        </thead>
        <tbody>
          {(runs.data?.runs ?? []).map((run) => (
            <tr key={run.id} data-run-id={run.id}>
              <td>
                <StateBadge name={runStateName(run.state)} tone={toneOfRun(run.state)} />
              </td>
              <td>
                <a href={runHref(run.id)}>{run.name || "(no name)"}</a>
              </td>
              <td>{formatTime(run.createTime)}</td>
              <td>{durationOf(run.createTime, run.finishTime)}</td>
              <td class="mono">{run.id.slice(0, 8)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs.data && runs.data.runs.length === 0 ? <p class="empty">No runs{state || name ? " match the filters" : ""}.</p> : null}
      <div class="pager">
        <button type="button" disabled={page === 0} onClick={() => setPageTokens(pageTokens.slice(0, -1))}>
          Previous
        </button>
        <span>page {page + 1}</span>
        <button
          type="button"
          disabled={!runs.data?.nextPageToken}
          onClick={() => runs.data?.nextPageToken && setPageTokens([...pageTokens, runs.data.nextPageToken])}
        >
          Next
        </button>
      </div>
    </section>
  );
}
