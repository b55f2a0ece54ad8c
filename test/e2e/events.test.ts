// Events and triggers (issue 16, item 5) end to end: a real server, real
// PostgreSQL, real workers. An event starts its trigger's run with the
// payload as the first argument, once per (event, trigger) however often it is
// published; filters, pauses, deletions and namespaces decide which triggers
// start; task code publishes events with ids that survive a re-run.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, EventService, type Client } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { CallError } from "../../client/call-errors.js";
import { task } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { taskEventId } from "../../worker-sdk/task-events.js";
import { EventPublisher } from "../../server/events/event-publisher.js";
import { EventSweeper } from "../../server/events/event-sweeper.js";
import { silentLogger } from "../../server/observe/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/** Returns what it was given, with its extra initial arguments. */
const echo = task("echo", (...args: unknown[]) => args);
/** Publishes two events, then fails on its first try (after publishing): the retry publishes again. */
const announce = task("announce", async (order: number) => {
  const ctx = currentTask();
  const first = await ctx.publishEvent("order.announced", { order, n: 1 });
  const second = await ctx.publishEvent("order.announced", { order, n: 2 });
  if (ctx.retryNumber === 1) throw new Error("crash after publishing");
  return [first.eventId, second.eventId, first.duplicate, second.duplicate, ctx.runId, ctx.path];
});

let ts: TestServer;
let client: PipewrightClient;
let rawEvents: Client<typeof EventService>;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [echo, announce], slots: 8 });
  client = ts.client();
  rawEvents = createClient(EventService, ts.address);
});
afterAll(async () => {
  rawEvents?.close();
  await ts?.stop();
});

/** The runs an event's publish started, by trigger id. */
function byTrigger(runs: { triggerId: string; runId: string }[]): Record<string, string> {
  return Object.fromEntries(runs.map((r) => [r.triggerId, r.runId]));
}

async function expectCode(call: Promise<unknown>, code: grpc.status, ...words: string[]): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${grpc.status[code]}`).toBeInstanceOf(CallError);
  expect(grpc.status[(err as CallError).code]).toBe(grpc.status[code]);
  for (const w of words) expect((err as CallError).details).toContain(w);
}

describe("events and triggers", () => {
  it("an event starts its trigger's run with the payload before the pipeline's initial args", async () => {
    await client.triggers.create({ id: "start-echo", eventName: "order.created", pipeline: echo.send("from-pipeline"), runName: "echoed" });
    const published = await client.events.publish("order.created", { order: 7 }, { eventId: "evt-1" });
    expect(published.duplicate).toBe(false);
    expect(published.runs.map((r) => [r.triggerId, r.error])).toEqual([["start-echo", ""]]);
    const run = client.run(published.runs[0].runId);
    expect(await run.result(10_000)).toEqual([{ order: 7 }, "from-pipeline"]);
    expect((await run.get()).name).toBe("echoed");
  });

  it("publishing the same event id again starts nothing new and answers the same runs", async () => {
    await client.triggers.create({ id: "dup", eventName: "dup.event", pipeline: echo.send() });
    const first = await client.events.publish("dup.event", { n: 1 }, { eventId: "same-id" });
    const again = await client.events.publish("dup.event", { n: 2 }, { eventId: "same-id" });
    expect(again.duplicate).toBe(true);
    expect(again.runs).toEqual(first.runs);
    expect(await client.run(first.runs[0].runId).result(10_000)).toEqual([{ n: 1 }]);
    const runs = await client.rpc.listRuns({ pageSize: 1000 });
    expect(runs.runs.filter((r) => r.id === first.runs[0].runId)).toHaveLength(1);
    const { events } = await client.events.list({ name: "dup.event" });
    expect(events.map((e) => [e.eventId, e.payload])).toEqual([["same-id", { n: 1 }]]);
    expect(events[0].triggeredAt).toBeInstanceOf(Date);
  });

  it("two triggers of a name start one run each; a filter that does not match starts none", async () => {
    await client.triggers.create({ id: "two-a", eventName: "two", pipeline: echo.send("a") });
    await client.triggers.create({ id: "two-b", eventName: "two", pipeline: echo.send("b") });
    await client.triggers.create({ id: "two-eu", eventName: "two", filter: { "order.region": "eu", "order.items.0": 1 }, pipeline: echo.send("eu") });
    const us = await client.events.publish("two", { order: { region: "us", items: [1] } });
    expect(Object.keys(byTrigger(us.runs)).sort()).toEqual(["two-a", "two-b"]);
    const eu = await client.events.publish("two", { order: { region: "eu", items: [1, 2] } });
    const runs = byTrigger(eu.runs);
    expect(Object.keys(runs).sort()).toEqual(["two-a", "two-b", "two-eu"]);
    expect(new Set(Object.values(runs)).size).toBe(3);
    expect(await client.run(runs["two-eu"]).result(10_000)).toEqual([{ order: { region: "eu", items: [1, 2] } }, "eu"]);
    // A payload that is not JSON matches no filter with conditions, and still the others.
    const raw = await rawEvents.publishEvent({
      name: "two",
      payload: { kind: { case: "payload", value: { encoding: "bytes", data: new Uint8Array([1, 2]) } } },
    });
    expect(raw.runs.map((r) => r.triggerId).sort()).toEqual(["two-a", "two-b"]);
  });

  it("a paused trigger starts nothing until resumed; a deleted one nothing at all", async () => {
    await client.triggers.create({ id: "pausable", eventName: "pause.me", pipeline: echo.send() });
    expect((await client.triggers.pause("pausable")).paused).toBe(true);
    expect((await client.events.publish("pause.me", 1)).runs).toEqual([]);
    expect((await client.triggers.resume("pausable")).paused).toBe(false);
    expect((await client.events.publish("pause.me", 2)).runs.map((r) => r.triggerId)).toEqual(["pausable"]);
    await client.triggers.delete("pausable");
    expect((await client.events.publish("pause.me", 3)).runs).toEqual([]);
    await expectCode(client.triggers.get("pausable"), grpc.status.NOT_FOUND, "pausable");
  });

  it("an event of namespace A does not start B's trigger, and B's triggers are not A's to see", async () => {
    const a = new PipewrightClient(ts.address, { namespace: "team-a" });
    const b = new PipewrightClient(ts.address, { namespace: "team-b" });
    await ts.worker({ namespace: "team-b", tasks: [echo] });
    try {
      await b.triggers.create({ id: "b-only", eventName: "shared.name", pipeline: echo.send() });
      expect((await a.events.publish("shared.name", "for a")).runs).toEqual([]);
      await expectCode(a.triggers.get("b-only"), grpc.status.NOT_FOUND);
      await expectCode(a.triggers.delete("b-only"), grpc.status.NOT_FOUND);
      await expectCode(a.triggers.pause("b-only"), grpc.status.NOT_FOUND);
      expect((await a.triggers.list()).triggers).toEqual([]);
      expect((await a.events.list()).events.map((e) => e.payload)).toEqual(["for a"]);
      // The same event id in B is B's own event, and starts B's trigger.
      const inB = await b.events.publish("shared.name", "for b");
      expect(await b.run(inB.runs[0].runId).result(10_000)).toEqual(["for b"]);
      expect((await b.events.list()).events.map((e) => e.payload)).toEqual(["for b"]);
    } finally {
      a.close();
      b.close();
    }
  });

  it("task code publishes events; a retried task publishes the same event ids, which start nothing twice", async () => {
    await client.triggers.create({ id: "on-announce", eventName: "order.announced", pipeline: echo.send() });
    const run = await client.submit(announce.withOptions({ retry: { maxAttempts: 2, initialDelayMs: 10 } }).send(5));
    const [id1, id2, dup1, dup2, runId, path] = (await run.result(10_000)) as [string, string, boolean, boolean, string, string];
    expect([id1, id2]).toEqual([taskEventId(runId, path, 1), taskEventId(runId, path, 2)]);
    expect([dup1, dup2]).toEqual([true, true]); // the second try's publishes were the first try's events
    const { events } = await client.events.list({ name: "order.announced" });
    expect(events.map((e) => e.payload)).toEqual([
      { order: 5, n: 2 },
      { order: 5, n: 1 },
    ]);
    const started = events.flatMap((e) => e.runs.map((r) => r.runId));
    expect(started).toHaveLength(2);
    const results = await Promise.all(started.map((id) => client.run(id).result(10_000)));
    expect(results).toEqual([[{ order: 5, n: 2 }], [{ order: 5, n: 1 }]]);
  });

  it("lists triggers a page at a time", async () => {
    const ns = new PipewrightClient(ts.address, { namespace: "paging" });
    try {
      for (const id of ["p-3", "p-1", "p-2"]) await ns.triggers.create({ id, eventName: "x", pipeline: echo.send() });
      const first = await ns.triggers.list({ pageSize: 2 });
      expect(first.triggers.map((t) => t.triggerId)).toEqual(["p-1", "p-2"]);
      const second = await ns.triggers.list({ pageSize: 2, pageToken: first.nextPageToken });
      expect([second.triggers.map((t) => t.triggerId), second.nextPageToken]).toEqual([["p-3"], ""]);
      expect((await ns.triggers.get("p-2")).createTime).toBeDefined();
    } finally {
      ns.close();
    }
  });

  it("events past the retention are deleted (a week when runs are kept forever); newer ones stay", async () => {
    const sql = ts.server.sql;
    await sql`
      insert into events (namespace, event_id, name, payload, published_at, triggered_at)
      values ('retention', 'old', 'r', '', now() - interval '200 hours', now()), ('retention', 'recent', 'r', '', now() - interval '100 hours', null)`;
    const publisher = new EventPublisher({
      sql,
      engine: ts.server.engine,
      prepare: () => Promise.reject(new Error("unused")),
      waiters: { deliver: async () => {} },
      log: silentLogger(),
    });
    const ids = async () =>
      (await sql<{ event_id: string }[]>`select event_id from events where namespace = 'retention' order by event_id`).map((r) => r.event_id);
    await new EventSweeper(sql, publisher, { retentionHours: 0, log: silentLogger() }).deleteOld();
    expect(await ids()).toEqual(["recent"]);
    await new EventSweeper(sql, publisher, { retentionHours: 1, log: silentLogger() }).deleteOld();
    expect(await ids()).toEqual([]);
  });
});
