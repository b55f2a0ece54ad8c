// EventService refusals (real server, real PostgreSQL): each bad field is
// INVALID_ARGUMENT naming it, a taken trigger id ALREADY_EXISTS, past the
// triggers-per-namespace limit RESOURCE_EXHAUSTED naming it, and a refusal
// stores nothing.

import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, EventService, TriggerSchema, ValueSchema, type Client, type Value } from "@pipewright/protocol";
import { taskRef } from "../../client/task-ref.js";
import { MAX_TRIGGER_BYTES, MAX_TRIGGERS_PER_NAMESPACE } from "../../server/api/event-service.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { badRequestViolations } from "../support/wire.js";

let ts: TestServer;
let events: Client<typeof EventService>;
const pipeline = taskRef<[], unknown>("noop").send().toProto();
const trigger = (fields: Record<string, unknown> = {}) => create(TriggerSchema, { triggerId: "t1", eventName: "e", pipeline, ...fields });

beforeAll(async () => {
  ts = await startTestServer();
  events = createClient(EventService, ts.address);
});
afterAll(async () => {
  events?.close();
  await ts?.stop();
});

async function refusal(call: Promise<unknown>): Promise<{ code: string; details: string; fields: string[] }> {
  const err = await call.then(
    () => {
      throw new Error("the call was accepted");
    },
    (e: grpc.ServiceError) => e,
  );
  return {
    code: grpc.status[err.code],
    details: err.details,
    fields: err.code === grpc.status.INVALID_ARGUMENT ? badRequestViolations(err).map((v) => v.field) : [],
  };
}

/** The fields an INVALID_ARGUMENT names, in order (its google.rpc.BadRequest details). */
async function fieldsOf(call: Promise<unknown>): Promise<string[]> {
  const r = await refusal(call);
  expect(r.code).toBe("INVALID_ARGUMENT");
  return r.fields;
}

describe("PublishEvent", () => {
  it("refuses a bad name, event id or payload, naming each field, and stores nothing", async () => {
    for (const [request, fields] of [
      [{ name: "" }, ["name"]],
      [{ name: "has space" }, ["name"]],
      [{ name: "x".repeat(201) }, ["name"]],
      [{ name: "é" }, ["name"]],
      [{ name: "ok", eventId: "has space" }, ["event_id"]],
      [{ name: "ok", eventId: "x".repeat(129) }, ["event_id"]],
      [{ name: "", eventId: "é" }, ["name", "event_id"]],
      [{ name: "ok", payload: nested(300) }, ["payload"]],
    ] as const) {
      const got = await refusal(events.publishEvent(request as never));
      expect(
        got.fields.map((f) => f.split(/[.[]/)[0]),
        got.details.slice(0, 300),
      ).toEqual(fields); // a too-deep payload is refused as it is decoded, at its deepest path under "payload"
    }
    expect((await events.listEvents({})).events).toEqual([]);
  });

  it("makes an event id when none is given", async () => {
    const r = await events.publishEvent({ name: "no.id" });
    expect(r.eventId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.duplicate).toBe(false);
  });
});

describe("triggers", () => {
  it("refuses a bad trigger, naming every violated field, and stores nothing", async () => {
    expect(await fieldsOf(events.createTrigger({}))).toEqual(["trigger"]);
    const r = await refusal(
      events.createTrigger({
        trigger: create(TriggerSchema, {
          triggerId: "a:b",
          eventName: "bad name",
          filter: [{ path: "a", equals: "not json" }],
          runName: "x".repeat(201),
          runTimeout: { seconds: -1n },
        }),
      }),
    );
    expect(r.code).toBe("INVALID_ARGUMENT");
    expect(r.fields).toEqual([
      "trigger.trigger_id",
      "trigger.event_name",
      "trigger.filter[0].equals",
      "trigger.run_name",
      "trigger.run_timeout",
      "trigger.pipeline",
    ]);
    // The pipeline is checked as SubmitRun checks it, with its path under trigger.
    const badPipeline = await refusal(events.createTrigger({ trigger: trigger({ pipeline: { steps: [{}] } }) }));
    expect(badPipeline.code).toBe("INVALID_ARGUMENT");
    expect(badPipeline.details).toContain("trigger.pipeline.steps[0]");
    expect((await events.listTriggers({})).triggers).toEqual([]);
  });

  it("refuses bad ids, page sizes and page tokens", async () => {
    for (const call of [
      () => events.getTrigger({ triggerId: "" }),
      () => events.deleteTrigger({ triggerId: "a b" }),
      () => events.pauseTrigger({ triggerId: "x".repeat(64) }),
      () => events.resumeTrigger({ triggerId: "a:b" }),
    ])
      expect(await fieldsOf(call())).toEqual(["trigger_id"]);
    expect(await fieldsOf(events.listTriggers({ pageSize: 1001 }))).toEqual(["page_size"]);
    expect(await fieldsOf(events.listEvents({ pageSize: -1 }))).toEqual(["page_size"]);
    expect(await fieldsOf(events.listTriggers({ pageToken: "!!" }))).toEqual(["page_token"]);
    expect(await fieldsOf(events.listEvents({ pageToken: "abc" }))).toEqual(["page_token"]);
    expect(await fieldsOf(events.listEvents({ name: "a b" }))).toEqual(["name"]);
  });

  it("a trigger id is unique in its namespace: ALREADY_EXISTS, and the first one stays", async () => {
    await events.createTrigger({ trigger: trigger({ triggerId: "unique", eventName: "first" }) });
    const r = await refusal(events.createTrigger({ trigger: trigger({ triggerId: "unique", eventName: "second" }) }));
    expect([r.code, r.details]).toEqual(["ALREADY_EXISTS", expect.stringContaining("unique")]);
    expect((await events.getTrigger({ triggerId: "unique" })).trigger!.eventName).toBe("first");
    const missing = await refusal(events.getTrigger({ triggerId: "nope" }));
    expect([missing.code, missing.details]).toEqual(["NOT_FOUND", expect.stringContaining("nope")]);
  });

  it("a namespace holds at most 10,000 triggers: RESOURCE_EXHAUSTED naming the limit; other namespaces are not affected", async () => {
    // Filled in SQL: ten thousand calls would only make the test slow.
    const spec = toBinary(TriggerSchema, trigger());
    await ts.server.sql`
      insert into triggers (namespace, trigger_id, event_name, spec)
      select 'crowded', 'fill-' || i, 'e', ${spec} from generate_series(1, ${MAX_TRIGGERS_PER_NAMESPACE}) i`;
    const crowded = createClient(EventService, ts.address, { namespace: "crowded" });
    try {
      const r = await refusal(crowded.createTrigger({ trigger: trigger({ triggerId: "one-more" }) }));
      expect(r.code).toBe("RESOURCE_EXHAUSTED");
      expect(r.details).toContain("limit of triggers per namespace");
      expect(r.details).toContain(String(MAX_TRIGGERS_PER_NAMESPACE));
      await crowded.deleteTrigger({ triggerId: "fill-1" });
      await crowded.createTrigger({ trigger: trigger({ triggerId: "one-more" }) });
    } finally {
      crowded.close();
    }
    await events.createTrigger({ trigger: trigger({ triggerId: "elsewhere" }) });
  });
});

describe("list responses stay within a message", () => {
  it("ListEvents ends a page early past 32 MiB of payloads, and the token goes on from there", async () => {
    const ns = createClient(EventService, ts.address, { namespace: "big-events" });
    try {
      const big = (c: string) =>
        create(ValueSchema, { kind: { case: "payload", value: { data: new TextEncoder().encode(JSON.stringify(c.repeat(17 * 1024 * 1024))) } } });
      await ns.publishEvent({ name: "big", eventId: "a", payload: big("a") });
      await ns.publishEvent({ name: "big", eventId: "b", payload: big("b") });
      const first = await ns.listEvents({ pageSize: 10 });
      expect(first.events.map((e) => e.eventId)).toEqual(["b"]);
      const second = await ns.listEvents({ pageSize: 10, pageToken: first.nextPageToken });
      expect([second.events.map((e) => e.eventId), second.nextPageToken]).toEqual([["a"], ""]);
      expect(second.events[0].payload?.kind.case === "payload" && second.events[0].payload.kind.value.data.length).toBe(17 * 1024 * 1024 + 2);
      const paged = await ns.listEvents({ pageSize: 1 });
      expect(paged.events.map((e) => e.eventId)).toEqual(["b"]);
    } finally {
      ns.close();
    }
  }, 60_000);

  it("a trigger over 1 MiB encoded is RESOURCE_EXHAUSTED naming the limit", async () => {
    const arg = create(ValueSchema, { kind: { case: "payload", value: { data: new Uint8Array(1024 * 1024) } } });
    const r = await refusal(events.createTrigger({ trigger: trigger({ triggerId: "huge", pipeline: { ...pipeline, initialArgs: [arg] } }) }));
    expect(r.code).toBe("RESOURCE_EXHAUSTED");
    expect(r.details).toContain(`limit of ${MAX_TRIGGER_BYTES} bytes per trigger`);
  });
});

/** A value nested `depth` lists deep. */
function nested(depth: number): Value {
  let v = create(ValueSchema);
  for (let i = 0; i < depth; i++) v = create(ValueSchema, { kind: { case: "list", value: { items: [v] } } });
  return v;
}
