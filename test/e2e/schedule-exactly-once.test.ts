// Schedules fire exactly once (issue 16, item 2), with real server processes:
// a schedule every second on two processes sharing one database starts one
// run per cron second, through one of them killed with SIGKILL mid-way; and a
// fire recorded whose submit never happened (a kill between the two), or whose
// submit happened but was not recorded, makes exactly one run when the next
// process looks.

import { afterAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { taskRef } from "../../client/task-ref.js";
import { parseCron } from "../../server/core/cron.js";
import { connect, type Sql } from "../../server/store/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort, killProcess, resilient } from "../support/fault-harness.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { until } from "../support/until.js";

const echo = taskRef<[string], string>("echo");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let db: TestDatabase;
let sql: Sql;
const processes: ServerProcess[] = [];
const clients: PipewrightClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) await killProcess(p.child, "SIGTERM");
  await sql?.end();
  await db?.drop();
});

async function start(): Promise<{ server: ServerProcess; client: PipewrightClient }> {
  const server = await spawnServer(["--address", `127.0.0.1:${await freePort()}`, "--log-level", "debug"], { DATABASE_URL: db.url });
  processes.push(server);
  const client = new PipewrightClient(server.address);
  clients.push(client);
  return { server, client };
}

interface Fire {
  fire_at: Date;
  outcome: number;
  run_uid: string | null;
  request_id: string;
}

async function firesOf(scheduleId: string): Promise<Fire[]> {
  return sql<Fire[]>`
    select f.fire_at, f.outcome, f.run_uid, f.request_id from schedule_fires f join schedules s on s.id = f.schedule_id
    where s.schedule_id = ${scheduleId} order by f.fire_at`;
}

describe("a schedule every second on two server processes", () => {
  it("starts exactly one run per cron second, through one process killed with SIGKILL", async () => {
    db = await createTestDatabase();
    sql = connect(db.url, { max: 2 });
    const a = await start();
    const b = await start();
    const createdAt = Date.now();
    await a.client.schedules.create({ id: "every-second", cron: "* * * * * *", pipeline: echo.send("tick"), overlap: "allow" });
    // B hears of the schedule A created (NOTIFY: the line only its listener writes), not only at its next periodic look.
    await until("B told of the new schedule", () => /a schedule was created or changed: looking now/.test(b.server.output()), 5000);
    await sleep(8000);
    await killProcess(a.server.child, "SIGKILL");
    const killedAt = Date.now();
    await sleep(8000);
    const pausingAt = Date.now();
    await resilient("pausing through B", () => b.client.schedules.pause("every-second"), 20_000);
    // Fires the kill left pending are started by B within its retry (3 s) and poll (2 s).
    await until("no fire pending", async () => (await firesOf("every-second")).every((f) => f.outcome !== 1), 15_000);

    const fires = await firesOf("every-second");
    const first = fires[0].fire_at.getTime();
    const last = fires.at(-1)!.fire_at.getTime();
    // Every cron time from the first fire to the last is there once: no gap, no duplicate.
    const cron = parseCron("* * * * * *", "UTC").schedule!;
    const expected: number[] = [];
    for (let t: number | undefined = first; t !== undefined && t <= last; t = cron.nextAfter(t)) expected.push(t);
    expect(fires.map((f) => f.fire_at.getTime())).toEqual(expected);
    // ... and the window is the whole time it ran: from the first second after the create to the pause.
    expect(first).toBeLessThanOrEqual(createdAt + 2000);
    expect(last).toBeGreaterThanOrEqual(pausingAt - 1000);
    expect(expected.length).toBeGreaterThanOrEqual(12); // ~16 s of fires, some after the kill
    expect(last).toBeGreaterThan(killedAt + 3000);
    expect(fires.every((f) => f.outcome === 2 && f.run_uid)).toBe(true);
    // One run per fire, each with the fire's derived request id, and no other run of the schedule.
    const runs = await sql<{ uid: string; request_id: string }[]>`select uid, request_id from runs where name = 'every-second'`;
    expect(runs).toHaveLength(fires.length);
    expect(new Set(runs.map((r) => r.uid))).toEqual(new Set(fires.map((f) => f.run_uid)));
    expect(new Set(runs.map((r) => r.request_id))).toEqual(new Set(fires.map((f) => `schedule:every-second:${f.fire_at.toISOString()}`)));
    // Both processes fired while both were up (the claim is shared, not owned by one).
    expect(a.server.output()).toMatch(/schedule every-second fired/);
    expect(b.server.output()).toMatch(/schedule every-second fired/);
  }, 90_000);

  it("a fire recorded but never submitted, and one submitted but not recorded, each make exactly one run when the next process looks", async () => {
    const b = processes[1];
    const client = clients[1];
    await client.schedules.create({ id: "crash-window", cron: "0 0 3 1 1 *", pipeline: echo.send("crash"), overlap: "allow" });
    const [{ id }] = await sql<{ id: number }[]>`select id from schedules where schedule_id = 'crash-window'`;
    const neverSubmitted = new Date("2026-01-01T03:00:00.000Z");
    const submittedOnly = new Date("2025-01-01T03:00:00.000Z");
    // The second: its run was submitted (same request id, as the scheduler makes it), then the process died before recording it.
    const earlier = await client.submit(echo.send("crash"), { requestId: `schedule:crash-window:${submittedOnly.toISOString()}`, name: "crash-window" });
    // Both rows as a process killed right after the claim's commit leaves them: pending, touched long ago.
    await sql`
      insert into schedule_fires (schedule_id, fire_at, outcome, request_id, touched_at) values
        (${id}, ${neverSubmitted}, 1, ${`schedule:crash-window:${neverSubmitted.toISOString()}`}, now() - interval '1 minute'),
        (${id}, ${submittedOnly}, 1, ${`schedule:crash-window:${submittedOnly.toISOString()}`}, now() - interval '1 minute')`;
    await until("both fires started", async () => (await firesOf("crash-window")).every((f) => f.outcome === 2), 10_000);
    const fires = await firesOf("crash-window");
    expect(fires.find((f) => f.fire_at.getTime() === submittedOnly.getTime())!.run_uid).toBe(earlier.id);
    const runs = await sql<{ uid: string }[]>`select uid from runs where name = 'crash-window'`;
    expect(runs).toHaveLength(2);
    expect(new Set(runs.map((r) => r.uid))).toEqual(new Set(fires.map((f) => f.run_uid)));
    expect(b.output()).toMatch(/crash-window: retrying a pending fire/);
  }, 30_000);
});
