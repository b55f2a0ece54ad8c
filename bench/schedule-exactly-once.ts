// `npm run scale:schedule [-- --seconds=600] [--kill-every=150]`
//
// The issue's scale claim for schedules: a schedule firing every second for
// ten minutes across two server processes starts exactly 600 runs. Two server
// processes share a fresh database; one schedule "* * * * * *" (overlap ALLOW)
// fires for --seconds; every --kill-every seconds one of the processes (in
// turn) is killed with SIGKILL and started again. Then the schedule is paused
// and every cron second of the window is checked against the runs table.
// Prints one JSON line: {fires_expected, runs_started, duplicates, missing, kills, ...}.
// Too long for `npm test`; test/e2e/schedule-exactly-once.test.ts is the short form.

import postgres from "postgres";
import { PipewrightClient } from "../client/client.js";
import { taskRef } from "../client/task-ref.js";
import { killProcess } from "../test/support/fault-harness.js";
import { spawnServer, type ServerProcess } from "../test/support/server-process.js";
import { benchPostgres, freePort, freshDatabase } from "./processes.js";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const SECONDS = arg("seconds", 600);
const KILL_EVERY = arg("kill-every", 150);
const SCHEDULE = "every-second";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

async function main(): Promise<void> {
  const { adminUrl, stop: stopPg } = await benchPostgres();
  const url = await freshDatabase(adminUrl, "pipewright_schedule_bench");
  const ports = [await freePort(), await freePort()];
  const start = (i: number) => spawnServer(["--address", `127.0.0.1:${ports[i]}`], { DATABASE_URL: url, PIPEWRIGHT_LOG_LEVEL: "warn" });
  const servers: ServerProcess[] = [await start(0), await start(1)];
  const client = new PipewrightClient(servers[0].address);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  let kills = 0;
  try {
    await client.schedules.create({ id: SCHEDULE, cron: "* * * * * *", overlap: "allow", pipeline: taskRef<[string], string>("noop").send("tick") });
    const createdAt = Date.now();
    log(`schedule created; firing for ${SECONDS} s on two processes, one killed with SIGKILL every ${KILL_EVERY} s`);
    const until = createdAt + SECONDS * 1000;
    let nextKill = createdAt + KILL_EVERY * 1000;
    while (Date.now() < until) {
      await sleep(Math.min(1000, until - Date.now()));
      if (Date.now() >= nextKill && Date.now() < until - 5000) {
        const i = kills % 2;
        await killProcess(servers[i].child, "SIGKILL");
        kills++;
        log(`killed process ${i} (kill ${kills}); starting it again`);
        servers[i] = await start(i);
        nextKill += KILL_EVERY * 1000;
      }
    }
    const pauseAt = Date.now();
    // Through the process not killed last (its channel is not backing off from a kill).
    const survivor = new PipewrightClient(servers[kills % 2 === 0 ? 0 : 1].address);
    await survivor.schedules.pause(SCHEDULE);
    survivor.close();
    // Fires a kill left pending are started by the next look (within seconds).
    for (let i = 0; i < 30; i++) {
      const [{ pending }] = await sql<{ pending: number }[]>`select count(*)::int as pending from schedule_fires where outcome = 1`;
      if (pending === 0) break;
      await sleep(1000);
    }
    // The window: every cron second after the create, up to the pause (the first and last second excluded: the pause races the fire).
    const first = Math.floor(createdAt / 1000) * 1000 + 1000;
    const last = Math.floor(pauseAt / 1000) * 1000 - 1000;
    const expected = (last - first) / 1000 + 1;
    const fires = await sql<{ at: Date; outcome: number; run_uid: string | null }[]>`
      select fire_at as at, outcome, run_uid from schedule_fires where fire_at between ${new Date(first)} and ${new Date(last)}`;
    const runs = await sql<{ request_id: string; n: number }[]>`
      select request_id, count(*)::int as n from runs where name = ${SCHEDULE} group by request_id`;
    const inWindow = runs.filter((r) => {
      const at = Date.parse(r.request_id.slice(`schedule:${SCHEDULE}:`.length));
      return at >= first && at <= last;
    });
    const started = new Set(fires.filter((f) => f.outcome === 2).map((f) => f.at.getTime()));
    const missing: string[] = [];
    for (let t = first; t <= last; t += 1000) if (!started.has(t)) missing.push(new Date(t).toISOString());
    const [{ other }] = await sql<{ other: number }[]>`
      select count(*)::int as other from runs where name = ${SCHEDULE} and (request_id is null or request_id not like ${`schedule:${SCHEDULE}:%`})`;
    const result = {
      seconds: SECONDS,
      fires_expected: expected,
      runs_started: inWindow.reduce((n, r) => n + r.n, 0),
      duplicates: inWindow.reduce((n, r) => n + r.n - 1, 0) + other,
      missing: missing.length,
      missing_fires: missing.slice(0, 20),
      skipped_fires: fires.filter((f) => f.outcome === 3).length,
      kills,
      runs_total: runs.reduce((n, r) => n + r.n, 0),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exitCode = result.runs_started === expected && result.duplicates === 0 && result.missing === 0 ? 0 : 1;
  } finally {
    client.close();
    await sql.end();
    for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) await killProcess(s.child, "SIGTERM");
    await stopPg();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
