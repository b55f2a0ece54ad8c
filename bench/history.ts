// The dashboard with history (issue 15, item 4): how long the runs page's
// questions take through the JSON API when the database keeps many finished
// runs, next to the same questions with few (the peer in the same run: the
// ratio says whether anything grows with history).
//
// The runs are written straight into the runs table (generate_series, no
// tasks ran): the queries only read rows. Names come from 100 names, states
// are mostly SUCCEEDED with 1% FAILED and 0.5% CANCELLED, creation times
// spread over 30 days; 1,000 runs of another namespace sit beside them.

import http from "node:http";
import postgres from "postgres";
import { freePort, freshDatabase, startServerProcess } from "./processes.js";
import { median, percentile, round } from "./stats.js";

export interface HistoryFigures {
  runs: number;
  /** The runs page: ListRuns (50 newest) and CountRuns, together, as the page asks them. */
  pageLoadMs: number;
  pageLoadP95Ms: number;
  /** ListRuns of the FAILED runs (1% of them), 50 newest. */
  failedPageMs: number;
  /** ListRuns of one name (1% of them), 50 newest. */
  namePageMs: number;
  /** The next page after the first (keyset). */
  nextPageMs: number;
  countRunsMs: number;
  insertSeconds: number;
}

const REPEAT = 30;

/** Fills a fresh database with `runs` finished runs and times the dashboard's queries through a real server. */
export async function history(adminUrl: string, runs: number, label: string): Promise<HistoryFigures> {
  const db = await freshDatabase(adminUrl, `bench_history_${label}_${process.pid}`);
  const [port, dashboardPort] = [await freePort(), await freePort()];
  const server = await startServerProcess(db, port, ["--dashboard-address", `127.0.0.1:${dashboardPort}`]);
  const sql = postgres(db, { max: 1, onnotice: () => {} });
  try {
    const started = performance.now();
    await sql`
      insert into runs (uid, name, state, spec, created_at, finished_at, task_count)
      select gen_random_uuid(), 'run-' || (i % 100),
             case when i % 100 = 7 then 5 when i % 200 = 3 then 6 else 4 end,
             '\\x'::bytea, t, t + interval '1 second', 1
      from generate_series(1, ${runs}) as i, lateral (select now() - (i::float8 / ${runs}) * interval '30 days' as t) c`;
    await sql`
      insert into runs (uid, namespace, name, state, spec, created_at, finished_at, task_count)
      select gen_random_uuid(), 'other', 'run-1', 4, '\\x'::bytea, now(), now(), 1 from generate_series(1, 1000)`;
    // Finished runs days old have been vacuumed by autovacuum in any real database: the visibility map is set.
    await sql`vacuum analyze runs`;
    const insertSeconds = (performance.now() - started) / 1000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const call = (method: string, body: unknown) => post(agent, dashboardPort, method, body);
    const time = async (f: () => Promise<unknown>) => {
      await f(); // warm
      const ms: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const t = performance.now();
        await f();
        ms.push(performance.now() - t);
      }
      return ms;
    };
    const first = (await call("ListRuns", { pageSize: 50 })) as { nextPageToken: string };
    const page = await time(() => Promise.all([call("ListRuns", { pageSize: 50 }), call("CountRuns", {})]));
    const figures: HistoryFigures = {
      runs,
      pageLoadMs: round(median(page), 1),
      pageLoadP95Ms: round(percentile(page, 95), 1),
      failedPageMs: round(median(await time(() => call("ListRuns", { pageSize: 50, states: ["RUN_STATE_FAILED"] }))), 1),
      namePageMs: round(median(await time(() => call("ListRuns", { pageSize: 50, name: "run-42" }))), 1),
      nextPageMs: round(median(await time(() => call("ListRuns", { pageSize: 50, pageToken: first.nextPageToken }))), 1),
      countRunsMs: round(median(await time(() => call("CountRuns", {}))), 1),
      insertSeconds: round(insertSeconds, 1),
    };
    agent.destroy();
    return figures;
  } finally {
    await sql.end();
    await server.stop();
  }
}

function post(agent: http.Agent, port: number, method: string, body: unknown): Promise<unknown> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: "127.0.0.1", port, method: "POST", path: `/api/pipewright.v1.RunService/${method}`, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${method}: ${res.statusCode} ${text}`))));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}
