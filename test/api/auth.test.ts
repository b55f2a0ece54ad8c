// Scoped tokens, for real: a server started with a tokens file, real clients,
// a real worker, the CLI. Every method of every generated service is called with
// no token, a wrong token and a token of each scope: each scope allows exactly
// its methods (README: Security / Tokens).

import { appendFileSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { AdminService } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { Worker } from "../../worker-sdk/worker.js";
import { task } from "../../worker-sdk/task.js";
import * as t from "../../examples/tasks.js";
import { assertScopeTable, authEnabled, METHOD_SCOPES, UNAUTHENTICATED_DETAILS } from "../../server/api/auth.js";
import { createToken, parseTokensFile, SCOPES, type Scope } from "../../server/api/tokens.js";
import { DEFAULT_CONFIG } from "../../server/config.js";
import { startServer } from "../../server/server.js";
import { runCli, type Io } from "../../server/cli/program.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { memoryLog } from "../support/memory-log.js";
import { until } from "../support/until.js";

/** Every service generated from proto/pipewright/v1 (a new one is covered without touching this test). */
async function generatedServices(): Promise<DescService[]> {
  const dir = path.resolve("proto/gen/pipewright/v1");
  const services: DescService[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith("_pb.ts"))) {
    const mod = (await import(path.join(dir, file.replace(/\.ts$/, ".js")))) as Record<string, unknown>;
    for (const value of Object.values(mod)) if ((value as DescService)?.kind === "service") services.push(value as DescService);
  }
  return services;
}

const dir = mkdtempSync(path.join(tmpdir(), "pipewright-tokens-"));
const tokensFile = path.join(dir, "tokens");
/** One token per scope, and one with all of them. */
const tokens = Object.fromEntries([...SCOPES, "all"].map((s) => [s, createToken(`t-${s}`, s === "all" ? [...SCOPES] : [s as Scope])])) as Record<
  Scope | "all",
  ReturnType<typeof createToken>
>;
const adminToken = "env-admin-token-0123456789abcdef";
let services: DescService[];
let ts: TestServer;
const log = memoryLog("debug");

beforeAll(async () => {
  services = await generatedServices();
  writeFileSync(
    tokensFile,
    `# test tokens\n${Object.values(tokens)
      .map((x) => x.line)
      .join("\n")}\n`,
  );
  ts = await startTestServer({ tokensFile, adminToken }, log.logger);
});
afterAll(() => ts?.stop());

interface Outcome {
  code: grpc.status;
  details: string;
}

/** Calls `method` with an empty request and `token`; the status it ends with (OK, or the first error). */
async function call(service: DescService, method: DescMethod, token: string | undefined): Promise<Outcome> {
  const client = createClient(service, ts.address, { token }) as unknown as Record<string, (...a: unknown[]) => unknown> & { close(): void };
  const deadline = Date.now() + 3000;
  try {
    switch (method.methodKind) {
      case "unary":
        await client[method.localName]({}, { deadline });
        return { code: grpc.status.OK, details: "" };
      case "server_streaming":
        for await (const _ of client[method.localName]({}, { deadline }) as AsyncIterable<unknown>) break;
        return { code: grpc.status.OK, details: "" };
      case "bidi_streaming":
        return await new Promise<Outcome>((resolve) => {
          const stream = client[method.localName]({ deadline }) as grpc.ClientDuplexStream<unknown, unknown>;
          stream.on("data", () => {});
          stream.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
          stream.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
          stream.end();
        });
      default:
        throw new Error(`unexpected method kind ${method.methodKind}`);
    }
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  } finally {
    client.close();
  }
}

const everyMethod = () => services.flatMap((s) => s.methods.map((m) => ({ service: s, method: m, name: `${s.typeName}/${m.name}` })));
const AUTH_CODES = [grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED];

describe("the scope table", () => {
  it("names a scope for every method of every generated service, and nothing else", () => {
    const names = everyMethod().map((m) => m.name);
    expect(names.length).toBeGreaterThanOrEqual(15);
    expect(names.filter((n) => !(n in METHOD_SCOPES))).toEqual([]);
    expect(Object.keys(METHOD_SCOPES).sort()).toEqual([...names].sort());
    expect(() => assertScopeTable(services)).not.toThrow();
    for (const scope of Object.values(METHOD_SCOPES)) expect(SCOPES).toContain(scope);
  });

  it("is the documented one: a worker token cannot submit or control, a submit token cannot connect", () => {
    const byScope = (scope: Scope) =>
      Object.entries(METHOD_SCOPES)
        .filter(([, s]) => s === scope)
        .map(([m]) => m.split(".v1.")[1])
        .sort();
    expect(Object.fromEntries(SCOPES.map((s) => [s, byScope(s)]))).toEqual({
      submit: [
        "EventService/CreateTrigger",
        "EventService/DeleteTrigger",
        "EventService/PauseTrigger",
        "EventService/PublishEvent",
        "EventService/ResumeTrigger",
        "RunService/BatchSubmitRuns",
        "RunService/ResubmitRun",
        "RunService/SubmitRun",
        "ScheduleService/CreateSchedule",
        "ScheduleService/TriggerSchedule",
        "ScheduleService/UpdateSchedule",
      ],
      read: [
        "EventService/GetTrigger",
        "EventService/ListEvents",
        "EventService/ListTriggers",
        "RunService/CountRuns",
        "RunService/GetRun",
        "RunService/ListRuns",
        "RunService/WaitRun",
        "RunService/WaitRuns",
        "RunService/WatchRun",
        "ScheduleService/GetSchedule",
        "ScheduleService/ListScheduleFires",
        "ScheduleService/ListSchedules",
      ],
      control: [
        "RunService/CancelRun",
        "RunService/DeleteRun",
        "RunService/PauseRun",
        "RunService/ResumeRun",
        "RunService/SignalRun",
        "ScheduleService/DeleteSchedule",
        "ScheduleService/PauseSchedule",
        "ScheduleService/ResumeSchedule",
      ],
      worker: ["WorkerService/Connect"],
      admin: ["AdminService/GetServerStatus", "AdminService/ListCircuitBreakers", "AdminService/ListWorkers"],
      metrics: [], // GET /metrics on the HTTP port, no gRPC method
    });
  });

  it("fails a server's start when a method has no scope", () => {
    const fake = { typeName: "pipewright.v1.NewService", methods: [{ name: "DoIt" }] } as unknown as DescService;
    expect(() => assertScopeTable([...services, fake])).toThrow(/no scope for pipewright\.v1\.NewService\/DoIt/);
  });
});

describe("a server with tokens", () => {
  it("refuses every method of every service without a token, and with a wrong one, with the same UNAUTHENTICATED message", async () => {
    for (const { service, method, name } of everyMethod()) {
      for (const token of [undefined, "pw_not-a-token-at-all-0123456789", tokens.all.line.split(" sha256:")[1]]) {
        const outcome = await call(service, method, token);
        expect({ name, ...outcome }).toEqual({ name, code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS });
      }
    }
    expect(ts.server.auth!.refused.unauthenticated).toBeGreaterThanOrEqual(everyMethod().length * 3);
  });

  it("lets each scope call exactly its methods; the others are PERMISSION_DENIED naming the scope needed", async () => {
    for (const { service, method, name } of everyMethod()) {
      const needed = METHOD_SCOPES[name];
      for (const scope of SCOPES) {
        const outcome = await call(service, method, tokens[scope].secret);
        if (scope === needed) expect({ name, scope, refused: AUTH_CODES.includes(outcome.code) }).toEqual({ name, scope, refused: false });
        else
          expect({ name, scope, ...outcome }).toEqual({
            name,
            scope,
            code: grpc.status.PERMISSION_DENIED,
            details: `this token lacks the scope ${needed}, which ${name} needs`,
          });
      }
      for (const secret of [tokens.all.secret, adminToken])
        expect({ name, code: AUTH_CODES.includes((await call(service, method, secret)).code) }).toEqual({ name, code: false });
    }
  });

  it("checks the token before reading the request: garbage bytes without a token are UNAUTHENTICATED, not malformed", async () => {
    const raw = new grpc.Client(ts.address, grpc.credentials.createInsecure());
    const identity = (b: Buffer) => b;
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest("/pipewright.v1.RunService/SubmitRun", identity, identity, Buffer.from([0xff, 0xff, 0xff]), new grpc.Metadata(), (e) => resolve(e)),
    );
    raw.close();
    expect([err?.code, err?.details]).toEqual([grpc.status.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS]);
  });

  it("leaves health and reflection open", async () => {
    const raw = new grpc.Client(ts.address, grpc.credentials.createInsecure());
    const identity = (b: Buffer) => b;
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest("/grpc.health.v1.Health/Check", identity, identity, Buffer.alloc(0), new grpc.Metadata(), (e) => resolve(e)),
    );
    expect(err).toBeNull();
    const reflection = await new Promise<grpc.StatusObject>((resolve) => {
      const s = raw.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", identity, identity, new grpc.Metadata());
      s.on("data", () => {});
      s.on("error", () => {});
      s.on("status", resolve);
      s.end();
    });
    expect(reflection.code).toBe(grpc.status.OK);
    raw.close();
  });

  it("runs tasks for a worker with a worker-only token; that token cannot submit or cancel; a submit token cannot connect as a worker", async () => {
    const worker = await ts.worker({ tasks: t.allTasks, slots: 2, token: tokens.worker.secret });
    expect(worker.state).toBe("running");
    const client = new PipewrightClient(ts.address, { token: tokens.all.secret });
    const run = await client.submit(t.multiply.send(6, 7));
    expect(await run.result()).toBe(42);

    const asWorker = new PipewrightClient(ts.address, { token: tokens.worker.secret });
    await expect(asWorker.rpc.submitRun({ pipeline: {} })).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/scope submit/),
    });
    await expect(asWorker.rpc.cancelRun({ runId: run.id })).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringMatching(/scope control/),
    });
    asWorker.close();
    client.close();

    const submitter = new Worker({
      address: ts.address,
      tasks: t.allTasks,
      token: tokens.submit.secret,
      log: () => {},
      reconnectDelayMs: { initial: 50, max: 200 },
    });
    await expect(submitter.start()).rejects.toThrow(/server refused the worker: this token lacks the scope worker/);
    await submitter.stop();
  });

  it("takes the token from PIPEWRIGHT_TOKEN when none is given", async () => {
    process.env.PIPEWRIGHT_TOKEN = tokens.read.secret;
    try {
      const client = new PipewrightClient(ts.address);
      expect((await client.rpc.listRuns({ pageSize: 1 })).runs).toBeDefined();
      client.close();
    } finally {
      delete process.env.PIPEWRIGHT_TOKEN;
    }
  });
});

/** The status of a ListRuns with this token (OK when allowed). */
async function listRunsWith(secret: string): Promise<grpc.status> {
  const c = new PipewrightClient(ts.address, { token: secret });
  try {
    await c.rpc.listRuns({ pageSize: 1 }, { deadline: Date.now() + 3000 });
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  } finally {
    c.close();
  }
}

describe("the tokens file", () => {
  it("holds hashes, not secrets: a secret in place of a hash is refused", () => {
    const { secret, line } = createToken("ci", ["submit", "read"]);
    expect(line).not.toContain(secret);
    expect(line).toMatch(/^ci submit,read sha256:[0-9a-f]{64}$/);
    expect(parseTokensFile(line)[0].scopes).toEqual(new Set(["submit", "read"]));
    expect(() => parseTokensFile(`ci submit ${secret}`)).toThrow(/line 1: .*hash of the secret, not the secret/);
  });

  it("is re-read when it changes: tokens are added and revoked without a restart; a malformed change keeps the old tokens", async () => {
    const fresh = createToken("added-later", ["read"]);
    const listRuns = async (secret: string) =>
      (
        await call(
          services.find((s) => s.name === "RunService")!,
          services.find((s) => s.name === "RunService")!.method.listRuns,
          secret,
        )
      ).code;
    expect(await listRuns(fresh.secret)).toBe(grpc.status.UNAUTHENTICATED);
    appendFileSync(tokensFile, `${fresh.line}\n`);
    await until("the added token works", async () => (await listRuns(fresh.secret)) === grpc.status.OK);

    // Revoked: its line goes.
    writeFileSync(tokensFile, `${fresh.line}\n${tokens.all.line}\n`);
    await until("the read token is revoked", async () => (await listRuns(tokens.read.secret)) === grpc.status.UNAUTHENTICATED);
    expect(await listRuns(fresh.secret)).toBe(grpc.status.OK);

    // Malformed: logged, and the tokens there were stay.
    writeFileSync(tokensFile, `${fresh.line}\nthis line is wrong\n`);
    await until("the reload error is logged", () => log.lines().some((l) => l.level === "error" && /tokens file not reloaded.*line 2/.test(l.msg)));
    expect(await listRuns(fresh.secret)).toBe(grpc.status.OK);
    expect(await listRuns(tokens.all.secret)).toBe(grpc.status.OK);

    // Put back for any test after this one.
    writeFileSync(
      tokensFile,
      `${Object.values(tokens)
        .map((x) => x.line)
        .join("\n")}\n`,
    );
    await until("the read token is back", async () => (await listRuns(tokens.read.secret)) === grpc.status.OK);
  });

  it("revoking a token ends the calls it started: a worker's stream (its worker is gone from the server) and a WatchRun", async () => {
    const workerToken = createToken("revoked-worker", ["worker"]);
    const readToken = createToken("revoked-reader", ["read"]);
    const all = Object.values(tokens).map((x) => x.line);
    writeFileSync(tokensFile, [...all, workerToken.line, readToken.line].join("\n") + "\n");
    const admin = createClient(AdminService, ts.address, { token: tokens.all.secret });
    const submitter = new PipewrightClient(ts.address, { token: tokens.all.secret });
    const reader = new PipewrightClient(ts.address, { token: readToken.secret });
    const workers = async () => (await admin.listWorkers({})).workers.filter((w) => w.name === "revoked-worker").length;
    const worker = new Worker({ address: ts.address, token: workerToken.secret, tasks: [t.add], name: "revoked-worker", log: () => {} });
    try {
      await until("the new tokens are in force", async () => (await listRunsWith(readToken.secret)) === grpc.status.OK);
      await worker.start();
      expect(await workers()).toBe(1);
      // A run nobody serves stays running: its watch stays open.
      const run = await submitter.submit(task("nobody_serves_this", () => 0).send());
      const watch = (async () => {
        try {
          for await (const _ of reader.rpc.watchRun({ runId: run.id })) void _;
          return "ended without an error";
        } catch (err) {
          return grpc.status[(err as grpc.ServiceError).code];
        }
      })();
      const held = (ts.server.engine as unknown as { registry: { held(uid: string): { listeners: Set<unknown> } | undefined } }).registry.held(run.id);
      await until("the watch is attached", async () => held!.listeners.size === 1);
      writeFileSync(tokensFile, all.join("\n") + "\n");
      expect(await watch).toBe("UNAUTHENTICATED");
      // The server let go of its side too: the run has no listener left.
      await until("the server's watch ended", async () => held!.listeners.size === 0);
      await until("the revoked worker's session is gone", async () => (await workers()) === 0);
      expect(ts.server.auth!.refused.revoked).toBeGreaterThanOrEqual(2);
      await submitter.run(run.id).cancel();
    } finally {
      await Promise.race([worker.stop(), new Promise((r) => setTimeout(r, 2000))]);
      admin.close();
      submitter.close();
      reader.close();
      writeFileSync(tokensFile, all.join("\n") + "\n");
    }
  });

  it("fails the start when malformed or missing", async () => {
    const bad = path.join(dir, "bad");
    writeFileSync(bad, `${tokens.read.line}\nci submit,fly sha256:${"0".repeat(64)}\n`);
    await expect(startServer({ ...DEFAULT_CONFIG, tokensFile: bad })).rejects.toThrow(/bad line 2: unknown scope "fly"/);
    await expect(startServer({ ...DEFAULT_CONFIG, tokensFile: path.join(dir, "missing") })).rejects.toThrow(/ENOENT/);
    await expect(startServer({ ...DEFAULT_CONFIG, adminToken: "short" })).rejects.toThrow(/at least 20 characters/);
  });
});

describe("the metrics endpoint", () => {
  it("with tokens on, GET /metrics needs a token with the metrics scope: 401 without one, 403 without the scope", async () => {
    const withMetrics = await startTestServer({ tokensFile, adminToken, metricsAddress: "127.0.0.1:0" });
    try {
      const get = async (token?: string) => {
        const res = await fetch(`http://${withMetrics.server.metricsAddress}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
        return { status: res.status, challenge: res.headers.get("www-authenticate"), body: await res.text() };
      };
      expect(await get()).toMatchObject({ status: 401, challenge: 'Bearer realm="pipewright metrics"' });
      expect((await get("not-a-token-at-all-0123456789")).status).toBe(401);
      expect(await get(tokens.admin.secret)).toMatchObject({ status: 403, body: "this token lacks the scope metrics\n" });
      const ok = await get(tokens.metrics.secret);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatch(/^pipewright_runs_submitted_total /m);
      expect((await get(adminToken)).status).toBe(200); // the environment's token has every scope
    } finally {
      await withMetrics.stop();
    }
  });
});

describe("without tokens", () => {
  it("auth is off: no token needed (today's behaviour)", async () => {
    expect(authEnabled(DEFAULT_CONFIG)).toBe(false);
    expect(authEnabled({ ...DEFAULT_CONFIG, tokensFile: "x" })).toBe(true);
    expect(authEnabled({ ...DEFAULT_CONFIG, adminToken: "x" })).toBe(true);
    const open = await startTestServer();
    try {
      expect(open.server.auth).toBeUndefined();
      expect((await open.client().rpc.listRuns({ pageSize: 1 })).runs).toEqual([]);
    } finally {
      await open.stop();
    }
  });
});

describe("the command line", () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const io: Io = { out: (x) => (out += x), err: (x) => (err += x), stdin: () => "", isTTY: false, rows: 40 };
    const code = await runCli(args, io);
    return { code, out, err };
  }

  it("token create prints the secret once and the line (with the hash) for the file", async () => {
    const made = await cli(["token", "create", "--name", "ci", "--scopes", "submit,read"]);
    expect(made.code).toBe(0);
    const secret = /^secret: (\S+)$/m.exec(made.out)![1];
    const line = /^line: +(.+)$/m.exec(made.out)![1];
    expect(line).not.toContain(secret);
    expect(parseTokensFile(line)[0].name).toBe("ci");
    expect((await cli(["token", "create", "--name", "ci", "--scopes", "submit,fly"])).code).toBe(64);
  });

  it("client verbs send --token; without it they are refused", async () => {
    const refused = await cli(["list", "--address", ts.address]);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain(`unauthenticated: ${UNAUTHENTICATED_DETAILS}`);
    expect((await cli(["list", "--address", ts.address, "--token", tokens.read.secret])).code).toBe(0);
    const status = await cli(["status", "--address", ts.address, "--token", tokens.read.secret]);
    expect(status.err).toContain("permission denied: this token lacks the scope admin");
    expect((await cli(["status", "--address", ts.address, "--token", tokens.admin.secret])).code).toBe(0);
  });
});
