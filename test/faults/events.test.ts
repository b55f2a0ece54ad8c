// Events through real server processes on one database (issue 16 item 5,
// "an event starting its trigger's run once"): two processes publishing the
// same event ids at once start one run per (event, trigger); a process killed
// (SIGKILL) right after storing an event, before starting any run, loses
// nothing: another process's sweeper starts its triggers' runs, once.

import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { KILL_AFTER_EVENT_INSERT_ENV } from "../../server/events/event-publisher.js";
import { task } from "../../worker-sdk/task.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort, killProcess } from "../support/fault-harness.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";

const echo = task("echo", (...args: unknown[]) => args);

let db: TestDatabase;
let sql: postgres.Sql;
const servers: ServerProcess[] = [];
let worker: Worker;

async function startServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      const server = await spawnServer(["--address", `127.0.0.1:${await freePort()}`], { DATABASE_URL: db.url, ...env });
      servers.push(server);
      return server;
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

/** The runs started for an event (by their derived request ids), by trigger. */
async function runsOf(eventId: string): Promise<{ request_id: string; uid: string }[]> {
  return sql<{ request_id: string; uid: string }[]>`
    select request_id, uid::text from runs where request_id like 'trigger:%' and request_id like ${"%:" + eventId} order by request_id`;
}

let a: ServerProcess;
let b: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = postgres(db.url, { max: 2, onnotice: () => {} });
  [a, b] = [await startServer(), await startServer()];
  worker = new Worker({ address: [a.address, b.address], tasks: [echo], log: () => {} });
  await worker.start();
  const client = new PipewrightClient(a.address);
  try {
    await client.triggers.create({ id: "first", eventName: "order.paid", pipeline: echo.send("first") });
    await client.triggers.create({ id: "second", eventName: "order.paid", pipeline: echo.send("second") });
  } finally {
    client.close();
  }
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  for (const s of servers) await killProcess(s.child);
  await sql?.end();
  await db?.drop();
});

describe("events across server processes", () => {
  it("two processes publishing the same event ids at once start one run per trigger", async () => {
    const [ca, cb] = [new PipewrightClient(a.address), new PipewrightClient(b.address)];
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `concurrent-${i}`);
      const answers = await Promise.all(ids.flatMap((id) => [ca, cb].map((c) => c.events.publish("order.paid", { id }, { eventId: id }))));
      for (const [i, id] of ids.entries()) {
        const [fromA, fromB] = [answers[2 * i], answers[2 * i + 1]];
        const stored = await runsOf(id);
        expect(stored.map((r) => r.request_id)).toEqual([`trigger:first:${id}`, `trigger:second:${id}`]);
        const byTrigger = (runs: { triggerId: string; runId: string }[]) => Object.fromEntries(runs.map((r) => [r.triggerId, r.runId]));
        const expected = { first: stored[0].uid, second: stored[1].uid };
        expect(byTrigger(fromA.runs)).toEqual(expected);
        expect(byTrigger(fromB.runs)).toEqual(expected);
        // One of them stored it; the other (or a retry of the first, after an UNAVAILABLE) found it stored.
        expect([fromA.duplicate, fromB.duplicate].filter((d) => !d).length).toBeLessThanOrEqual(1);
      }
      expect(await ca.run((await runsOf("concurrent-3"))[1].uid).result(30_000)).toEqual([{ id: "concurrent-3" }, "second"]);
    } finally {
      ca.close();
      cb.close();
    }
  }, 120_000);

  it("a process killed right after storing an event: another process's sweeper starts its triggers' runs, once", async () => {
    const doomed = await startServer({ [KILL_AFTER_EVENT_INSERT_ENV]: "1" });
    const via = new PipewrightClient(doomed.address);
    try {
      await expect(via.events.publish("order.paid", { id: "killed" }, { eventId: "killed-1" })).rejects.toThrow();
      expect(await doomed.exited).toBe("SIGKILL");
    } finally {
      via.close();
    }
    // The kill landed between the insert and the runs: the event is stored, untriggered, and no run exists.
    const [stored] = await sql<{ triggered_at: Date | null }[]>`select triggered_at from events where event_id = 'killed-1'`;
    expect(stored).toEqual({ triggered_at: null });
    expect(await runsOf("killed-1")).toEqual([]);
    // The survivors' sweepers (each looks every ~2 s at events untriggered for 5 s) complete it.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [row] = await sql<{ triggered_at: Date | null }[]>`select triggered_at from events where event_id = 'killed-1'`;
      if (row.triggered_at) break;
      expect(Date.now(), "the event was never completed by a sweeper").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 250));
    }
    const runs = await runsOf("killed-1");
    expect(runs.map((r) => r.request_id)).toEqual(["trigger:first:killed-1", "trigger:second:killed-1"]);
    // Publishing it again (the client's retry) answers those runs and starts nothing more.
    const ca = new PipewrightClient(a.address);
    try {
      const again = await ca.events.publish("order.paid", { id: "ignored" }, { eventId: "killed-1" });
      expect(again.duplicate).toBe(true);
      expect(again.runs.map((r) => [r.triggerId, r.runId])).toEqual([
        ["first", runs[0].uid],
        ["second", runs[1].uid],
      ]);
      expect(await ca.run(runs[0].uid).result(30_000)).toEqual([{ id: "killed" }, "first"]);
      // A few more sweeps later, still those two.
      await new Promise((r) => setTimeout(r, 3000));
      expect(await runsOf("killed-1")).toEqual(runs);
    } finally {
      ca.close();
    }
  }, 120_000);
});
