// The dashboard's port: its JSON gateway over the gRPC handlers (same answers,
// same tokens, scopes and namespaces, Connect-shaped errors, NDJSON for
// WatchRun, only the methods listed) and its static files (the page and its
// assets, nothing else of the disk), against a real server and worker.

import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetRunResponseSchema, ListRunsResponseSchema, RunState, WatchRunResponseSchema } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { waitForSignal } from "../../client/pipeline-builder.js";
import * as ex from "../../examples/tasks.js";
import { createToken } from "../../server/api/tokens.js";
import { startDashboardEndpoint, type DashboardEndpoint } from "../../server/api/dashboard-endpoint.js";
import { silentLogger } from "../../server/observe/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { writeTokensFile } from "../support/tokens-file.js";
import * as t from "../support/test-tasks.js";
import { until } from "../support/until.js";

const dir = mkdtempSync(path.join(tmpdir(), "pipewright-gateway-"));
const tokensFile = path.join(dir, "tokens");
const tokens = {
  read: createToken("read", ["read"]),
  all: createToken("all", ["submit", "read", "control", "admin"]),
  teamA: createToken("team-a", ["read", "control"], "team-a"),
  worker: createToken("worker", ["worker"]),
};
let ts: TestServer;
let client: PipewrightClient;

beforeAll(async () => {
  writeTokensFile(tokens, tokensFile);
  ts = await startTestServer({ tokensFile, dashboardAddress: "127.0.0.1:0" });
  await ts.worker({ tasks: t.testTasks, slots: 4, token: tokens.worker.secret });
  client = new PipewrightClient(ts.address, { token: tokens.all.secret });
});
afterAll(async () => {
  t.resetGates();
  client?.close();
  await ts?.stop();
});

interface Answer {
  status: number;
  type: string | null;
  body: string;
  json(): any;
}

/** `token` null: none sent. */
async function post(method: string, body: unknown, headers: Record<string, string> = {}, token: string | null = tokens.all.secret): Promise<Answer> {
  const res = await fetch(`http://${ts.server.dashboardAddress}/api/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get("content-type"), body: text, json: () => JSON.parse(text) };
}

describe("the JSON gateway", () => {
  it("answers GetRun and ListRuns exactly as gRPC does, in protobuf JSON", async () => {
    const run = await client.submit(ex.multiply.send(6, 7), { name: "gateway" });
    expect(await run.result()).toBe(42);
    const viaGrpc = await client.rpc.getRun({ runId: run.id, view: 2 });
    const viaJson = await post("pipewright.v1.RunService/GetRun", { runId: run.id, view: "RUN_VIEW_FULL" });
    expect(viaJson.status).toBe(200);
    expect(viaJson.json()).toEqual(toJson(GetRunResponseSchema, viaGrpc));
    const list = await post("pipewright.v1.RunService/ListRuns", { name: "gateway" });
    expect(list.json()).toEqual(toJson(ListRunsResponseSchema, await client.rpc.listRuns({ name: "gateway" })));
    expect(list.json().runs[0]).toMatchObject({ id: run.id, state: "RUN_STATE_SUCCEEDED", namespace: "default" });
  });

  it("streams WatchRun as NDJSON, one event a line, ending when the run ends", async () => {
    const run = await client.submit(t.gate.send("gw-watch"));
    const watching = post("pipewright.v1.RunService/WatchRun", { runId: run.id });
    await new Promise((r) => setTimeout(r, 200));
    t.openGate("gw-watch");
    const answer = await watching;
    expect(answer.status).toBe(200);
    expect(answer.type).toBe("application/x-ndjson");
    const lines = answer.body
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    // The run's logged events (seq > 0) are those gRPC's watch replays now; live-only step events (seq 0) may come in between.
    const grpcEvents: unknown[] = [];
    for await (const e of client.rpc.watchRun({ runId: run.id })) grpcEvents.push(toJson(WatchRunResponseSchema, e));
    const logged = (events: { event: { seq?: string } }[]) => events.filter((e) => e.event.seq !== undefined);
    expect(logged(lines)).toEqual(logged(grpcEvents as never));
    expect(logged(lines).length).toBeGreaterThanOrEqual(2); // the step done, the run finished
    expect(lines.every((l) => l.event?.runId === run.id)).toBe(true);
    expect(JSON.stringify(lines.at(-1))).toContain("RUN_STATE_SUCCEEDED"); // the last event: the run finished
  });

  it("controls: CancelRun cancels; CountRuns and ResubmitRun are served", async () => {
    const run = await client.submit(t.gate.send("gw-cancel"));
    const cancelled = await post("pipewright.v1.RunService/CancelRun", { runId: run.id, reason: "from the page" });
    expect(cancelled.status).toBe(200);
    expect((await run.wait()).state).toBe(RunState.CANCELLED);
    const counts = await post("pipewright.v1.RunService/CountRuns", {});
    expect(counts.json().counts.find((c: { state: string }) => c.state === "RUN_STATE_CANCELLED").count).not.toBe("0");
    const again = await post("pipewright.v1.RunService/ResubmitRun", { runId: run.id });
    expect(again.status).toBe(200);
    expect(again.json().run.id).not.toBe(run.id);
    await client.run(again.json().run.id).cancel();
  });

  it("SignalRun is served: a webhook ends a wait with its JSON body's payload, and its repeat (same signal id) changes nothing", async () => {
    const run = await client.submit(waitForSignal("payment.confirmed").waitForSignal("payment.settled"));
    const payload = { payload: { encoding: "json", data: Buffer.from(JSON.stringify({ amount: 42 })).toString("base64") } };
    const body = { runId: run.id, name: "payment.confirmed", payload, signalId: "hook-7" };
    const first = await post("pipewright.v1.RunService/SignalRun", body);
    expect([first.status, first.json().delivery]).toEqual([200, "SIGNAL_DELIVERY_DELIVERED"]);
    const repeat = await post("pipewright.v1.RunService/SignalRun", body);
    expect([repeat.status, repeat.json().delivery]).toEqual([200, "SIGNAL_DELIVERY_DUPLICATE"]);
    expect((await post("pipewright.v1.RunService/SignalRun", { ...body, name: "payment.settled" }, {}, tokens.read.secret)).status).toBe(403); // needs control
    await post("pipewright.v1.RunService/SignalRun", { runId: run.id, name: "payment.settled", payload, signalId: "hook-8" });
    expect(await run.result()).toEqual({ amount: 42 });
    const late = await post("pipewright.v1.RunService/SignalRun", { ...body, signalId: "hook-9" });
    expect([late.status, late.json()]).toEqual([
      400,
      { code: "failed_precondition", message: `run ${run.id} has already finished: a signal can no longer reach it` },
    ]);
  });

  it("refuses as gRPC would: no token 401, a token without the scope 403, another namespace's run 404", async () => {
    const run = await client.submit(ex.multiply.send(1, 2));
    await run.result();
    const none = await post("pipewright.v1.RunService/GetRun", { runId: run.id }, {}, null);
    expect([none.status, none.json()]).toEqual([401, { code: "unauthenticated", message: "missing or invalid token" }]);
    const readOnly = await post("pipewright.v1.RunService/CancelRun", { runId: run.id }, {}, tokens.read.secret);
    expect([readOnly.status, readOnly.json().code]).toEqual([403, "permission_denied"]);
    expect(readOnly.json().message).toMatch(/lacks the scope control/);
    const foreign = await post("pipewright.v1.RunService/GetRun", { runId: run.id }, { "pipewright-namespace": "team-a" }, tokens.teamA.secret);
    expect([foreign.status, foreign.json()]).toEqual([404, { code: "not_found", message: `no run with id ${run.id}` }]);
    const malformedNs = await post("pipewright.v1.RunService/ListRuns", {}, { "pipewright-namespace": "Not Valid" });
    expect([malformedNs.status, malformedNs.json().code]).toEqual([400, "invalid_argument"]);
  });

  it("a WatchRun whose token is revoked ends with the refusal as its last line, and the server lets go of the run", async () => {
    const reader = createToken("gw-reader", ["read"]);
    writeFileSync(tokensFile, [...Object.values(tokens).map((x) => x.line), reader.line].join("\n") + "\n");
    await until("the reader's token works", async () => (await post("pipewright.v1.RunService/ListRuns", {}, {}, reader.secret)).status === 200);
    const run = await client.submit(t.gate.send("gw-revoked"));
    const watching = post("pipewright.v1.RunService/WatchRun", { runId: run.id }, {}, reader.secret);
    const held = (ts.server.engine as unknown as { registry: { held(uid: string): { listeners: Set<unknown> } | undefined } }).registry.held(run.id);
    await until("the watch is attached", async () => held!.listeners.size === 1);
    writeFileSync(
      tokensFile,
      Object.values(tokens)
        .map((x) => x.line)
        .join("\n") + "\n",
    );
    const answer = await watching;
    expect(JSON.parse(answer.body.trim().split("\n").at(-1)!)).toEqual({ error: { code: "unauthenticated", message: "missing or invalid token" } });
    await until("the server let go of the run", async () => held!.listeners.size === 0);
    t.openGate("gw-revoked");
    await run.wait();
  });

  it("refuses what it does not serve and what is malformed, naming why", async () => {
    const submit = await post("pipewright.v1.RunService/SubmitRun", {});
    expect([submit.status, submit.json().code]).toEqual([501, "unimplemented"]); // submitting stays on gRPC
    expect((await post("pipewright.v1.WorkerService/Connect", {})).status).toBe(501);
    const garbage = await post("pipewright.v1.RunService/GetRun", "{not json");
    expect([garbage.status, garbage.json().code]).toEqual([400, "invalid_argument"]);
    const unknownField = await post("pipewright.v1.RunService/GetRun", { runId: "x", colour: "red" });
    expect([unknownField.status, unknownField.json().message]).toEqual([400, expect.stringMatching(/colour/)]);
    const badId = await post("pipewright.v1.RunService/GetRun", { runId: "nope" });
    expect([badId.status, badId.json().message]).toEqual([400, expect.stringMatching(/run_id: must be a run id/)]);
    const text = await post("pipewright.v1.RunService/ListRuns", "{}", { "content-type": "text/plain" });
    expect(text.status).toBe(415); // a browser sends text/plain cross-site without asking first: never served
    const crossSite = await post("pipewright.v1.RunService/ListRuns", {}, { origin: "http://evil.example" });
    expect([crossSite.status, crossSite.json().code]).toEqual([403, "permission_denied"]);
    const sameSite = await post("pipewright.v1.RunService/ListRuns", {}, { origin: `http://${ts.server.dashboardAddress}` });
    expect(sameSite.status).toBe(200);
    const huge = await post("pipewright.v1.RunService/ListRuns", JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) }));
    expect([huge.status, huge.json().code]).toEqual([429, "resource_exhausted"]);
    const get = await fetch(`http://${ts.server.dashboardAddress}/api/pipewright.v1.RunService/ListRuns`);
    expect(get.status).toBe(405);
  });
});

describe("the page's files", () => {
  let site: DashboardEndpoint;
  let root: string;
  beforeAll(async () => {
    root = path.join(dir, "dist") + path.sep;
    mkdirSync(path.join(root, "assets"), { recursive: true });
    writeFileSync(path.join(root, "index.html"), "<!doctype html><title>pw</title>");
    writeFileSync(path.join(root, "assets", "app-1a2b.js"), "console.log(1)");
    writeFileSync(path.join(dir, "secret.txt"), "not for the web");
    site = await startDashboardEndpoint("127.0.0.1:0", () => false, silentLogger(), undefined, root);
  });
  afterAll(() => site?.close());

  const get = (p: string, method = "GET") => fetch(`http://${site.address}${p}`, { method });

  it("serves index.html at / (no-cache) and hashed assets (immutable), with the security headers", async () => {
    const index = await get("/");
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    expect(index.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(index.headers.get("x-frame-options")).toBe("DENY");
    expect(await index.text()).toContain("<title>pw</title>");
    const asset = await get("/assets/app-1a2b.js");
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await get("/", "HEAD")).status).toBe(200);
  });

  it("reaches nothing outside its folder, and nothing of an unknown type", async () => {
    for (const p of [
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/assets/%2e%2e/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/secret.txt",
      "/assets/missing.js",
      "/x%00.js",
    ])
      expect((await get(p)).status, p).toBe(404);
    expect((await get("/", "POST")).status).toBe(405);
  });

  it("says how to build the page when it is not built", async () => {
    const empty = await startDashboardEndpoint("127.0.0.1:0", () => false, silentLogger(), undefined, path.join(dir, "nothing") + path.sep);
    try {
      const res = await fetch(`http://${empty.address}/`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/npm run dashboard:build/);
    } finally {
      await empty.close();
    }
  });
});
