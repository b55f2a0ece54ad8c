// ScheduleService against a real server and database: every refusal names its
// field and changes nothing; schedules are per namespace (NOT_FOUND across);
// a taken id is ALREADY_EXISTS; pause, resume, update, delete and trigger do
// what they say; runs come with a request id derived from the fire.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { PipelineSchema, RunState, ScheduleOverlapPolicy } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { CallError } from "../../client/call-errors.js";
import { taskRef } from "../../client/task-ref.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const echo = taskRef<[string], string>("echo");
let ts: TestServer;
let client: PipewrightClient;
let other: PipewrightClient;
beforeAll(async () => {
  ts = await startTestServer({ dashboardAddress: "127.0.0.1:0" });
  client = ts.client();
  other = new PipewrightClient(ts.address, { namespace: "elsewhere" });
});
afterAll(async () => {
  other?.close();
  await ts?.stop();
});

/** The refusal of `call`: its gRPC code and message. */
async function refusal(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call was refused").toBeInstanceOf(CallError);
  return { code: grpc.status[(err as CallError).code], details: (err as CallError).details };
}

const base = { id: "api-valid", cron: "0 0 3 * * *", pipeline: echo.send("x") };

describe("ScheduleService validation", () => {
  it.each([
    ["schedule.schedule_id", { id: "" }],
    ["schedule.schedule_id", { id: "-starts-with-dash" }],
    ["schedule.schedule_id", { id: "x".repeat(129) }],
    ["schedule.schedule_id", { id: "has space" }],
    ["schedule.cron", { cron: "* * * *" }],
    ["schedule.cron", { cron: "* * * * * * *" }],
    ["schedule.cron", { cron: "61 * * * *" }],
    ["schedule.cron", { cron: "0 0 30 2 *" }],
    ["schedule.cron", { cron: "* ".repeat(150) }],
    ["schedule.time_zone", { timeZone: "Mars/Olympus_Mons" }],
    ["schedule.catchup_window", { catchupWindowMs: 400 * 24 * 3600_000 }],
    ["schedule.run_name", { runName: "n".repeat(201) }],
    ["schedule.run_timeout", { runTimeoutMs: -5 }],
    ["schedule.pipeline", { pipeline: create(PipelineSchema, { steps: [] }) }],
  ])("refuses a bad %s, naming it", async (field, change) => {
    const { code, details } = await refusal(client.schedules.create({ ...base, ...(change as object) } as never));
    expect(code).toBe("INVALID_ARGUMENT");
    expect(details).toContain(field);
    expect((await client.schedules.list()).schedules).toEqual([]); // nothing stored
  });

  it("names every violation at once", async () => {
    const { details } = await refusal(client.schedules.create({ ...base, id: "", cron: "61 * * * *", timeZone: "Nowhere/Land", runName: "n".repeat(201) }));
    for (const f of ["schedule.schedule_id", "schedule.cron", "schedule.time_zone", "schedule.run_name"]) expect(details).toContain(f);
  });

  it("refuses an unknown overlap policy, a bad page size, page token and trigger request id", async () => {
    const overlap = await refusal(
      client.schedules.rpc.createSchedule({
        schedule: { scheduleId: "o", cron: "* * * * *", pipeline: echo.send("x").toProto(), overlap: 9 as ScheduleOverlapPolicy },
      }),
    );
    expect(overlap.details).toContain("schedule.overlap");
    expect((await refusal(client.schedules.list({ pageSize: 5000 }))).details).toContain("page_size");
    expect((await refusal(client.schedules.list({ pageToken: "!!!" }))).details).toContain("page_token");
    // Tokens that decode to what SQL cannot take (a NUL, a time out of range) are refused, not passed on.
    expect((await refusal(client.schedules.list({ pageToken: Buffer.from("a\u0000b").toString("base64url") }))).details).toContain("page_token");
    await client.schedules.create({ id: "tokens", cron: "0 0 3 * * *", pipeline: echo.send("x") });
    for (const t of ["a\u0000b", "99999-01-01T00:00:00.000Z", "yesterday"])
      expect((await refusal(client.schedules.fires("tokens", { pageToken: Buffer.from(t).toString("base64url") }))).details).toContain("page_token");
    await client.schedules.delete("tokens");
    const nul = await refusal(client.schedules.create({ ...base, id: "nul", runName: "a\u0000b" }));
    expect([nul.code, nul.details]).toEqual(["INVALID_ARGUMENT", expect.stringContaining("run_name")]);
    expect((await refusal(client.schedules.trigger("some-id", { requestId: "bad id with spaces" }))).details).toContain("request_id");
    expect((await refusal(client.schedules.get("bad id"))).code).toBe("INVALID_ARGUMENT");
  });

  it("a missing schedule message is named", async () => {
    expect((await refusal(client.schedules.rpc.createSchedule({}))).details).toContain("schedule: must be set");
  });
});

describe("ScheduleService across namespaces and ids", () => {
  it("creates with defaults, refuses a taken id with ALREADY_EXISTS, and another namespace sees none of it", async () => {
    const created = await client.schedules.create({ id: "ns-a", cron: "0 0 3 * * *", pipeline: echo.send("x") });
    expect(created).toMatchObject({ id: "ns-a", timeZone: "UTC", overlap: "skip", catchupWindowMs: 60_000, paused: false, runName: "" });
    expect(created.nextFireAt!.getUTCHours()).toBe(3);
    expect((await refusal(client.schedules.create({ id: "ns-a", cron: "* * * * *", pipeline: echo.send("y") }))).code).toBe("ALREADY_EXISTS");
    for (const call of [
      () => other.schedules.get("ns-a"),
      () => other.schedules.pause("ns-a"),
      () => other.schedules.resume("ns-a"),
      () => other.schedules.delete("ns-a"),
      () => other.schedules.trigger("ns-a"),
      () => other.schedules.fires("ns-a"),
      () => other.schedules.update({ id: "ns-a", cron: "* * * * * *", pipeline: echo.send("z") }),
    ]) {
      const r = await refusal(call());
      expect([r.code, r.details]).toEqual(["NOT_FOUND", "no schedule with id ns-a"]);
    }
    expect((await other.schedules.list()).schedules).toEqual([]);
    // The same id in another namespace is another schedule.
    await other.schedules.create({ id: "ns-a", cron: "0 0 4 * * *", pipeline: echo.send("x") });
    expect((await client.schedules.get("ns-a")).cron).toBe("0 0 3 * * *");
    await other.schedules.delete("ns-a");
    expect((await client.schedules.get("ns-a")).id).toBe("ns-a");
    await client.schedules.delete("ns-a");
    expect((await refusal(client.schedules.get("ns-a"))).code).toBe("NOT_FOUND");
  });

  it("lists by id a page at a time", async () => {
    for (const id of ["page-c", "page-a", "page-b"]) await client.schedules.create({ id, cron: "0 0 3 * * *", pipeline: echo.send(id) });
    const first = await client.schedules.list({ pageSize: 2 });
    expect(first.schedules.map((s) => s.id)).toEqual(["page-a", "page-b"]);
    const second = await client.schedules.list({ pageSize: 2, pageToken: first.nextPageToken });
    expect([second.schedules.map((s) => s.id), second.nextPageToken]).toEqual([["page-c"], ""]);
    for (const id of ["page-a", "page-b", "page-c"]) await client.schedules.delete(id);
  });

  it("pause clears the next fire, resume counts it from now; update keeps it unless the cron changes", async () => {
    await client.schedules.create({ id: "pr", cron: "0 0 3 * * *", timeZone: "Europe/Berlin", pipeline: echo.send("x") });
    const paused = await client.schedules.pause("pr");
    expect([paused.paused, paused.nextFireAt]).toEqual([true, undefined]);
    const resumed = await client.schedules.resume("pr");
    expect(resumed.paused).toBe(false);
    expect(resumed.nextFireAt!.getTime()).toBeGreaterThan(Date.now());
    const renamed = await client.schedules.update({ id: "pr", cron: "0 0 3 * * *", timeZone: "Europe/Berlin", pipeline: echo.send("y"), runName: "nightly" });
    expect([renamed.runName, renamed.nextFireAt]).toEqual(["nightly", resumed.nextFireAt]);
    const moved = await client.schedules.update({ id: "pr", cron: "0 30 4 * * *", timeZone: "Europe/Berlin", pipeline: echo.send("y"), overlap: "allow" });
    expect(moved.nextFireAt).not.toEqual(resumed.nextFireAt);
    expect(moved.overlap).toBe("allow");
    expect(moved.runName).toBe(""); // every setting replaced
    await client.schedules.delete("pr");
  });

  it("a trigger starts one run with a derived request id; repeating its request id starts no second", async () => {
    await client.schedules.create({ id: "trig", cron: "0 0 3 1 1 *", pipeline: echo.send("t"), overlap: "allow" });
    const fire = await client.schedules.trigger("trig", { requestId: "deploy-42" });
    expect(fire).toMatchObject({ outcome: "started", triggered: true, requestId: "schedule:trig:trigger:deploy-42" });
    const again = await client.schedules.trigger("trig", { requestId: "deploy-42" });
    expect(again.runId).toBe(fire.runId);
    const run = await client.run(fire.runId!).get();
    expect([run.name, run.requestId]).toEqual(["trig", "schedule:trig:trigger:deploy-42"]);
    const plain = await client.schedules.trigger("trig");
    expect(plain.runId).not.toBe(fire.runId);
    expect(plain.requestId).toBe(`schedule:trig:${plain.fireAt.toISOString()}`);
    const { fires } = await client.schedules.fires("trig");
    expect(fires.map((f) => f.runId)).toEqual([plain.runId, fire.runId]); // newest first
    expect((await client.schedules.get("trig")).lastFireAt).toEqual(plain.fireAt);
    await client.schedules.delete("trig");
    expect((await client.run(fire.runId!).get()).id).toBe(fire.runId); // its runs stay
  });

  it("a trigger follows the overlap policy: SKIP while its run is active, CANCEL_PREVIOUS cancels it (no worker here: runs stay active)", async () => {
    await client.schedules.create({ id: "trig-skip", cron: "0 0 3 1 1 *", pipeline: echo.send("s") });
    const first = await client.schedules.trigger("trig-skip");
    expect(first.outcome).toBe("started");
    const second = await client.schedules.trigger("trig-skip");
    expect([second.outcome, second.runId, second.reason]).toEqual(["skipped", undefined, `overlap SKIP: run ${first.runId} of this schedule is still active`]);
    await client.run(first.runId!).cancel("done");
    await client.run(first.runId!).wait();
    expect((await client.schedules.trigger("trig-skip")).outcome).toBe("started"); // none active any more

    await client.schedules.create({ id: "trig-cancel", cron: "0 0 3 1 1 *", overlap: "cancel_previous", pipeline: echo.send("c") });
    const a = await client.schedules.trigger("trig-cancel");
    const b = await client.schedules.trigger("trig-cancel");
    expect([a.outcome, b.outcome]).toEqual(["started", "started"]);
    const cancelled = await client.run(a.runId!).wait();
    expect(cancelled.state).toBe(RunState.CANCELLED);
    expect(JSON.stringify(cancelled.outcome)).toContain("replaced by its fire at");
    expect((await client.run(b.runId!).get()).state).toBe(RunState.RUNNING);
  });

  it("refuses a schedule past the per-namespace limit with RESOURCE_EXHAUSTED naming it", async () => {
    const ns = new PipewrightClient(ts.address, { namespace: "full" });
    try {
      // Fill the namespace directly (10,000 creates through the API would only test the API 10,000 times).
      const rows = 10_000;
      await ts.server.sql`
        insert into schedules (namespace, schedule_id, cron, time_zone, overlap, catchup_window_ms, pipeline, run_name, paused)
        select 'full', 'filler-' || i, '0 0 3 * * *', 'UTC', 1, 60000, '\\x'::bytea, '', true from generate_series(1, ${rows}) i`;
      const r = await refusal(ns.schedules.create({ id: "one-too-many", cron: "* * * * *", pipeline: echo.send("x") }));
      expect(r.code).toBe("RESOURCE_EXHAUSTED");
      expect(r.details).toContain("max schedules per namespace");
      expect((await refusal(ns.schedules.get("one-too-many"))).code).toBe("NOT_FOUND");
      await ts.server.sql`delete from schedules where namespace = 'full'`;
      expect((await ns.schedules.create({ id: "one-too-many", cron: "* * * * *", pipeline: echo.send("x") })).id).toBe("one-too-many");
      await ns.schedules.delete("one-too-many");
    } finally {
      ns.close();
    }
  });

  it("the dashboard's JSON API serves the read-only methods, and not the others", async () => {
    await client.schedules.create({ id: "json", cron: "0 0 3 * * *", pipeline: echo.send("x") });
    const post = (method: string, body: unknown) =>
      fetch(`http://${ts.server.dashboardAddress}/api/pipewright.v1.ScheduleService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const got = await post("GetSchedule", { scheduleId: "json" });
    expect(got.status).toBe(200);
    expect(((await got.json()) as { schedule: unknown }).schedule).toMatchObject({
      scheduleId: "json",
      cron: "0 0 3 * * *",
      overlap: "SCHEDULE_OVERLAP_POLICY_SKIP",
    });
    expect((await post("ListSchedules", {})).status).toBe(200);
    expect((await post("DeleteSchedule", { scheduleId: "json" })).status).toBe(501);
    await client.schedules.delete("json");
  });

  it("the overlap enum round-trips", async () => {
    const r = await client.schedules.rpc.createSchedule({
      schedule: { scheduleId: "enum", cron: "0 0 3 * * *", pipeline: echo.send("x").toProto(), overlap: ScheduleOverlapPolicy.CANCEL_PREVIOUS },
    });
    expect(r.schedule!.overlap).toBe(ScheduleOverlapPolicy.CANCEL_PREVIOUS);
    await client.schedules.delete("enum");
  });
});
