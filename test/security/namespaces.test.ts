// Namespaces, for real: one server with tokens, workers and clients of three
// namespaces. A worker only ever runs tasks of its own namespace (even with the
// same task name and queue as another's); a run of another namespace is
// NOT_FOUND to every read and control, exactly as a run that does not exist;
// listing shows one namespace; request ids are unique per namespace; a token is
// refused outside its namespaces; the default namespace is what callers
// without the header get (README: Security / Namespaces).

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { task } from "../../worker-sdk/task.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createToken, parseTokensFile } from "../../server/api/tokens.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { RunState } from "@pipewright/protocol";
import { until } from "../support/until.js";
import { runCli, type Io } from "../../server/cli/program.js";

const dir = mkdtempSync(path.join(tmpdir(), "pipewright-namespaces-"));
const tokensFile = path.join(dir, "tokens");
const tokens = {
  a: createToken("team-a", ["submit", "read", "control"], "team-a"),
  aWorker: createToken("team-a-worker", ["worker"], "team-a"),
  b: createToken("team-b", ["submit", "read", "control"], "team-b"),
  bWorker: createToken("team-b-worker", ["worker"], "team-b"),
  // No namespaces field: the default namespace only.
  plain: createToken("plain", ["submit", "read", "control", "worker"]),
  everywhere: createToken("operator", ["read"], "*"),
};

let ts: TestServer;
const closers: (() => unknown)[] = [];

/** The same task name in every namespace; each worker answers with its namespace's name. */
const whoami = (who: string) => task("whoami", () => who);
const whoamiRef = whoami("");

function client(token: string, namespace?: string): PipewrightClient {
  const c = new PipewrightClient(ts.address, { token, namespace });
  closers.push(() => c.close());
  return c;
}

async function worker(token: string, namespace: string | undefined, who: string): Promise<Worker> {
  const w = new Worker({ address: ts.address, token, namespace, tasks: [whoami(who)], log: () => {}, reconnectDelayMs: { initial: 50, max: 500 } });
  closers.push(() => w.stop());
  await w.start();
  return w;
}

/** The gRPC status a call ends with (OK when it works). */
async function statusOf(call: Promise<unknown>): Promise<grpc.status> {
  try {
    await call;
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

beforeAll(async () => {
  writeFileSync(
    tokensFile,
    Object.values(tokens)
      .map((t) => t.line)
      .join("\n") + "\n",
  );
  ts = await startTestServer({ tokensFile });
  await worker(tokens.aWorker.secret, "team-a", "worker of team-a");
  await worker(tokens.bWorker.secret, "team-b", "worker of team-b");
  await worker(tokens.plain.secret, undefined, "worker of default");
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await ts?.stop();
});

describe("namespaces", () => {
  it("a worker runs only its own namespace's tasks, with the same task name and queue everywhere", async () => {
    const [a, b, plain] = [client(tokens.a.secret, "team-a"), client(tokens.b.secret, "team-b"), client(tokens.plain.secret)];
    const results = await Promise.all(Array.from({ length: 10 }, () => [a, b, plain].map((c) => c.submitAndWait(whoamiRef.send()))).flat());
    expect(new Set(results.filter((_, i) => i % 3 === 0))).toEqual(new Set(["worker of team-a"]));
    expect(new Set(results.filter((_, i) => i % 3 === 1))).toEqual(new Set(["worker of team-b"]));
    expect(new Set(results.filter((_, i) => i % 3 === 2))).toEqual(new Set(["worker of default"]));
  });

  it("a namespace with no worker of its own waits: no other namespace's worker takes its task", async () => {
    const c = client(tokens.everywhere.secret, "team-c");
    // team-c has no submit token: the operator token only reads. Submit with a token of team-c made now.
    const cToken = createToken("team-c", ["submit", "read"], "team-c");
    writeFileSync(tokensFile, [...Object.values(tokens).map((t) => t.line), cToken.line].join("\n") + "\n");
    const submitter = client(cToken.secret, "team-c");
    await until("the new token is in force", async () => (await statusOf(submitter.rpc.listRuns({ pageSize: 1 }))) === grpc.status.OK, 10_000);
    const run = await submitter.submit(whoamiRef.send());
    await new Promise((r) => setTimeout(r, 500));
    const seen = await c.run(run.id).get(true);
    expect(seen.state).toBe(RunState.RUNNING);
    expect(seen.namespace).toBe("team-c");
    expect(seen.steps.find((s) => s.waitingReason)?.waitingReason).toMatch(/no connected worker serves task "whoami"/);
  });

  it("every read and control of another namespace's run is NOT_FOUND, as for a run that does not exist", async () => {
    const [a, b] = [client(tokens.a.secret, "team-a"), client(tokens.b.secret, "team-b")];
    const run = await a.submit(whoamiRef.send());
    await run.result();
    const id = run.id;
    const missing = "00000000-0000-4000-8000-000000000000";
    const calls = (runId: string): Record<string, () => Promise<unknown>> => ({
      getRun: () => b.rpc.getRun({ runId }),
      waitRun: () => b.rpc.waitRun({ runId }),
      waitRuns: () => b.rpc.waitRuns({ runIds: [runId] }),
      cancelRun: () => b.rpc.cancelRun({ runId }),
      pauseRun: () => b.rpc.pauseRun({ runId }),
      resumeRun: () => b.rpc.resumeRun({ runId }),
      deleteRun: () => b.rpc.deleteRun({ runId }),
      watchRun: async () => {
        for await (const _ of b.rpc.watchRun({ runId })) void _;
      },
    });
    const errors = async (runId: string) => {
      const out: Record<string, string> = {};
      for (const [name, call] of Object.entries(calls(runId))) {
        try {
          await call();
          out[name] = "OK";
        } catch (err) {
          const e = err as grpc.ServiceError;
          out[name] = `${grpc.status[e.code]}: ${e.details.replace(runId, "ID")}`;
        }
      }
      return out;
    };
    const foreign = await errors(id);
    for (const status of Object.values(foreign)) expect(status).toBe("NOT_FOUND: no run with id ID");
    // Word for word what a run that does not exist gets (waitRuns and deleteRun included).
    expect(foreign).toEqual(await errors(missing));
    // Nothing changed: the run is still there, finished, for its own namespace.
    expect((await a.run(id).get()).state).toBe(RunState.SUCCEEDED);
  });

  it("ListRuns shows the caller's namespace only; a run says its namespace", async () => {
    const [a, b, plain] = [client(tokens.a.secret, "team-a"), client(tokens.b.secret, "team-b"), client(tokens.plain.secret)];
    const mine = await b.submit(whoamiRef.send(), { name: "listed-in-b" });
    await mine.result();
    const names = async (c: PipewrightClient) => (await c.rpc.listRuns({ pageSize: 1000 })).runs.map((r) => [r.id, r.namespace]);
    const inB = await names(b);
    expect(inB).toContainEqual([mine.id, "team-b"]);
    expect(inB.every(([, ns]) => ns === "team-b")).toBe(true);
    expect((await names(a)).every(([, ns]) => ns === "team-a")).toBe(true);
    expect((await names(plain)).every(([, ns]) => ns === "default")).toBe(true);
    expect((await names(a)).map(([id]) => id)).not.toContain(mine.id);
  });

  it("a request id is unique within its namespace: the same key in two namespaces makes two runs", async () => {
    const [a, b] = [client(tokens.a.secret, "team-a"), client(tokens.b.secret, "team-b")];
    const a1 = await a.submit(whoamiRef.send(), { requestId: "order-42" });
    const a2 = await a.submit(whoamiRef.send(), { requestId: "order-42" });
    const b1 = await b.submit(whoamiRef.send(), { requestId: "order-42" });
    expect(a2.id).toBe(a1.id);
    expect(b1.id).not.toBe(a1.id);
    expect(await b1.result()).toBe("worker of team-b");
  });

  it("a token is refused outside its namespaces; a malformed namespace is INVALID_ARGUMENT", async () => {
    const list = (token: string, namespace?: string) => statusOf(client(token, namespace).rpc.listRuns({ pageSize: 1 }));
    expect(await list(tokens.a.secret, "team-b")).toBe(grpc.status.PERMISSION_DENIED);
    expect(await list(tokens.a.secret)).toBe(grpc.status.PERMISSION_DENIED); // the default namespace is not team-a's
    expect(await list(tokens.plain.secret, "team-a")).toBe(grpc.status.PERMISSION_DENIED);
    expect(await list(tokens.plain.secret, "default")).toBe(grpc.status.OK);
    expect(await list(tokens.everywhere.secret, "anything-at-all")).toBe(grpc.status.OK);
    const raw = client(tokens.everywhere.secret).rpc;
    const md = new grpc.Metadata();
    md.set("pipewright-namespace", "Not Valid!");
    const err = await raw.listRuns({ pageSize: 1 }, { metadata: md }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toMatch(/pipewright-namespace/);
    // A worker token of team-a cannot connect as a worker of team-b.
    const stray = new Worker({ address: ts.address, token: tokens.aWorker.secret, namespace: "team-b", tasks: [whoami("stray")], log: () => {} });
    await expect(stray.start()).rejects.toThrow(/not allowed in the namespace team-b/);
    await stray.stop();
  });

  it("the command line: --namespace on client verbs, token create --namespaces", async () => {
    const cli = async (args: string[]) => {
      let out = "";
      let err = "";
      const io: Io = { out: (x) => (out += x), err: (x) => (err += x), stdin: () => "", isTTY: false, rows: 40 };
      return { code: await runCli(args, io), out, err };
    };
    const b = client(tokens.b.secret, "team-b");
    const mine = await b.submit(whoamiRef.send(), { name: "cli-listed" });
    await mine.result();
    const inB = await cli(["list", "--address", ts.address, "--token", tokens.b.secret, "--namespace", "team-b"]);
    expect(inB.code, inB.err).toBe(0);
    expect(inB.out).toContain(mine.id);
    const inDefault = await cli(["list", "--address", ts.address, "--token", tokens.plain.secret]);
    expect(inDefault.code, inDefault.err).toBe(0);
    expect(inDefault.out).not.toContain(mine.id);
    const denied = await cli(["get", mine.id, "--address", ts.address, "--token", tokens.b.secret]);
    expect(denied.err).toMatch(/permission denied: this token is not allowed in the namespace default/);
    const made = await cli(["token", "create", "--name", "t", "--scopes", "read", "--namespaces", "team-a,team-b"]);
    expect(parseTokensFile(/^line: +(.+)$/m.exec(made.out)![1])[0].namespaces).toEqual(new Set(["team-a", "team-b"]));
    expect((await cli(["token", "create", "--name", "t", "--scopes", "read", "--namespaces", "Team A"])).code).toBe(64);
  });

  it("the tokens file's namespaces field: absent is the default namespace, * is every one, a bad name is an error naming the line", () => {
    const [t] = parseTokensFile(tokens.plain.line);
    expect(t.namespaces).toEqual(new Set(["default"]));
    expect(parseTokensFile(tokens.everywhere.line)[0].namespaces).toBe("*");
    expect(parseTokensFile(tokens.a.line)[0].namespaces).toEqual(new Set(["team-a"]));
    expect(() => parseTokensFile(`x read sha256:${"0".repeat(64)} Team_A`)).toThrow(/line 1: namespaces: a namespace is/);
  });
});
