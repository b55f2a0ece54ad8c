// TLS, mTLS and scoped tokens across a real network (issue 14 item 6): the server
// runs as its own process inside a network namespace of this test's own,
// listening on the namespace's end of a veth pair (not loopback); clients and
// workers in the test process reach it across the veth. Each refusal is asserted
// with its exact gRPC status code and, where the call could have changed
// something, that nothing was. The same case table runs on 127.0.0.1 too, so a
// machine without namespaces (not root, no `ip`) still runs it; there the
// namespace block reports itself skipped, with the reason.

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { appendFileSync, copyFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RunState, type TlsOptions } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { WorkerService } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { createToken } from "../../server/api/tokens.js";
import { EXIT } from "../../server/cli/output.js";
import { Certificates, type Pem } from "../support/certificates.js";
import { createTestDatabase } from "../support/database.js";
import { createNetns, netnsUnavailable } from "../support/netns.js";
import { spawnServer } from "../support/server-process.js";
import { echo, nap } from "../support/test-tasks.js";
import { until } from "../support/until.js";

/** Deadline of a call that is expected to be refused: long enough for a TLS handshake on a busy machine. */
const REFUSED_DEADLINE_MS = 5000;

const certs = new Certificates();
let ca: Pem, otherCa: Pem, client: Pem, foreignClient: Pem, expiredClient: Pem;
const tokensFile = path.join(certs.dir, "tokens");
const tokens = {
  submitRead: createToken("submit-read", ["submit", "read"]),
  read: createToken("read-only", ["read"]),
  worker: createToken("worker", ["worker"]),
  teamA: createToken("team-a", ["submit", "read", "control"], "team-a"),
  teamB: createToken("team-b", ["submit", "read", "control"], "team-b"),
  teamBWorker: createToken("team-b-worker", ["worker"], "team-b"),
};

beforeAll(() => {
  ca = certs.ca("ca");
  otherCa = certs.ca("other-ca");
  client = certs.issue("client", ca, "client");
  foreignClient = certs.issue("foreign-client", otherCa, "client");
  expiredClient = certs.issue("expired-client", ca, "client", { expired: true });
  writeFileSync(
    tokensFile,
    `${Object.values(tokens)
      .map((t) => t.line)
      .join("\n")}\n`,
  );
});
afterAll(() => certs.remove());

/** Where the servers run and how the test process reaches them and they reach PostgreSQL. */
interface Network {
  /** The address the servers listen on and the clients dial (without port). */
  host: string;
  /** A non-loopback host:port on the server's side, for the safe-default case. */
  exposedAddress: string;
  /** The command prefix that runs a server where it belongs (empty: right here). */
  wrapper: string[];
  /** The URL of a test database as the server sees it. */
  databaseUrl(url: string): string;
  close(): Promise<void>;
}

async function namespaceNetwork(): Promise<Network> {
  const ns = await createNetns();
  // The server inside needs the suite's PostgreSQL, which runs in the host's namespace on
  // 127.0.0.1 only (listen_addresses): the namespace has a loopback of its own and cannot
  // reach it. Its unix socket would cross (a path on the shared filesystem), but it may be
  // absent (DATABASE_URL given, or a data folder path too long for a socket) and postgres.js
  // takes a socket only through PGHOST. So a plain TCP relay in the test process, bound to the
  // veth's outside address, forwards to it: works with any PostgreSQL, and the server's
  // database traffic crosses the veth as well.
  const pg = new URL(inject("databaseUrl"));
  const relayPort = await ns.relay({ host: pg.hostname, port: Number(pg.port || 5432) });
  return {
    host: ns.inside,
    exposedAddress: `${ns.inside}:50051`,
    wrapper: ns.exec,
    databaseUrl(url) {
      const u = new URL(url);
      u.hostname = ns.outside;
      u.port = String(relayPort);
      return u.toString();
    },
    close: () => ns.remove(),
  };
}

async function loopbackNetwork(): Promise<Network> {
  // On the host, 0.0.0.0 (every interface) is what reaches beyond loopback.
  return { host: "127.0.0.1", exposedAddress: "0.0.0.0:0", wrapper: [], databaseUrl: (url) => url, close: async () => {} };
}

interface Served {
  address: string;
  stop(): Promise<void>;
}

/** A server process with a database of its own, listening on `network.host` (any free port). */
async function serve(network: Network, flags: string[]): Promise<Served> {
  const db = await createTestDatabase();
  try {
    const server = await spawnServer(
      ["--address", `${network.host}:0`, "--drain-grace-ms", "500", ...flags],
      { DATABASE_URL: network.databaseUrl(db.url) },
      60_000,
      network.wrapper,
    );
    return {
      address: server.address,
      async stop() {
        // Not a shutdown under test: kill it outright, then drop its database.
        if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
        await server.exited;
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

/** Runs a server that is expected to refuse to start: its exit code and output (killed after 30 s). */
function startRefused(network: Network, args: string[], env: Record<string, string>): Promise<{ code: number | string; output: string }> {
  const [command, ...prefix] = [...network.wrapper, process.execPath];
  const child = spawn(command, [...prefix, "--import", "tsx", "server/main.ts", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, output });
    }),
  );
}

/** The whole case table, written once, against the servers of `open()`'s network. */
function networkCases(label: string, open: () => Promise<Network>): void {
  let network: Network;
  let tlsServer: Served; // TLS and tokens
  let mtlsServer: Served; // TLS with client certificates (--tls-client-ca), no tokens
  let live: { certFile: string; keyFile: string }; // the files tlsServer reads (rotated to an expired certificate, then back)
  let expiredServer: Pem, goodServer: Pem;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    network = await open();
    closers.push(() => network.close());
    const ips = network.host === "127.0.0.1" ? [] : [network.host];
    const server = (goodServer = certs.issue(`${label}-server`, ca, "server", { ips }));
    expiredServer = certs.issue(`${label}-expired-server`, ca, "server", { ips, expired: true });
    live = { certFile: path.join(certs.dir, `${label}-live.pem`), keyFile: path.join(certs.dir, `${label}-live.key`) };
    copyFileSync(server.certFile, live.certFile);
    copyFileSync(server.keyFile, live.keyFile);
    const started = await Promise.allSettled([
      serve(network, ["--tls-cert", live.certFile, "--tls-key", live.keyFile, "--tokens-file", tokensFile]),
      serve(network, ["--tls-cert", server.certFile, "--tls-key", server.keyFile, "--tls-client-ca", ca.certFile]),
    ]);
    for (const s of started) if (s.status === "fulfilled") closers.push(() => s.value.stop());
    for (const s of started) if (s.status === "rejected") throw s.reason;
    [tlsServer, mtlsServer] = started.map((s) => (s as PromiseFulfilledResult<Served>).value);
  });

  afterAll(async () => {
    // Every closer runs, even after one fails: the namespace must go whatever happened.
    const errors: unknown[] = [];
    for (const close of closers.reverse())
      await Promise.resolve()
        .then(close)
        .catch((err: unknown) => errors.push(err));
    if (errors.length) throw errors[0];
  });

  function clientOf(address: string, tls?: TlsOptions, token?: string, namespace?: string): PipewrightClient {
    const c = new PipewrightClient(address, { tls, token, namespace });
    closers.push(() => c.close());
    return c;
  }

  async function startWorker(address: string, tls: TlsOptions, token?: string, namespace?: string): Promise<Worker> {
    const w = new Worker({ log: () => {}, tasks: [echo], address, tls, token, namespace, reconnectDelayMs: { initial: 50, max: 500 } });
    closers.push(() => Promise.race([w.stop(), new Promise((r) => setTimeout(r, 2000))]));
    await w.start();
    return w;
  }

  interface Status {
    code: grpc.status;
    details: string;
  }

  /** How a call ends: OK, or the gRPC status code and details of its error. */
  async function statusOf(call: Promise<unknown>): Promise<Status> {
    try {
      await call;
      return { code: grpc.status.OK, details: "" };
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { code: e.code, details: e.details };
    }
  }

  /** How a SubmitRun ends (OK: a run was created). */
  const submitStatus = (c: PipewrightClient) =>
    statusOf(c.rpc.submitRun({ requestId: randomUUID(), pipeline: echo.send("refused?").toProto() }, { deadline: Date.now() + REFUSED_DEADLINE_MS }));
  const submitCode = async (c: PipewrightClient) => (await submitStatus(c)).code;

  /** How a ListRuns ends. */
  const listStatus = (c: PipewrightClient) => statusOf(c.rpc.listRuns({ pageSize: 1 }, { deadline: Date.now() + REFUSED_DEADLINE_MS }));

  /** How many runs the server holds, read by a client that may. */
  async function runCount(reader: PipewrightClient): Promise<number> {
    return (await reader.rpc.listRuns({ pageSize: 1000 }, { deadline: Date.now() + REFUSED_DEADLINE_MS })).runs.length;
  }

  /** The status a WorkerService/Connect stream ends with when its hello is answered by a refusal. */
  function connectCode(address: string, tls: TlsOptions, token: string): Promise<grpc.status> {
    const raw = createClient(WorkerService, address, { tls, token });
    return new Promise<grpc.status>((resolve) => {
      const stream = raw.connect({ deadline: Date.now() + REFUSED_DEADLINE_MS });
      stream.on("data", () => {});
      stream.on("error", (e: grpc.ServiceError) => resolve(e.code));
      stream.on("status", (s: grpc.StatusObject) => resolve(s.code));
      stream.end();
    }).finally(() => raw.close());
  }

  describe("TLS with scoped tokens", () => {
    let reader: PipewrightClient; // right CA, submit,read token: counts runs around each refusal
    beforeAll(() => {
      reader = clientOf(tlsServer.address, { ca: ca.cert }, tokens.submitRead.secret);
    });

    it("the servers listen on this network's address", () => {
      expect(tlsServer.address.startsWith(`${network.host}:`)).toBe(true);
      expect(mtlsServer.address.startsWith(`${network.host}:`)).toBe(true);
    });

    it("a client with the right CA and a submit,read token submits; a worker with a worker token runs it", async () => {
      await startWorker(tlsServer.address, { ca: ca.cert }, tokens.worker.secret);
      const run = await reader.submit(echo.send("across", network.host));
      expect(await run.result(20_000)).toEqual(["across", network.host]);
    });

    it("a client that trusts another CA gets UNAVAILABLE (the handshake fails), and creates no run", async () => {
      const before = await runCount(reader);
      // The client refuses the server's certificate: the details say why (grpc-js passes on Node's TLS error).
      expect(await submitStatus(clientOf(tlsServer.address, { ca: otherCa.cert }, tokens.submitRead.secret))).toEqual({
        code: grpc.status.UNAVAILABLE,
        details: expect.stringMatching(/unable to verify the first certificate/),
      });
      expect(await runCount(reader)).toBe(before);
    });

    it("a plaintext client gets UNAVAILABLE, and creates no run", async () => {
      const before = await runCount(reader);
      expect(await submitCode(clientOf(tlsServer.address, undefined, tokens.submitRead.secret))).toBe(grpc.status.UNAVAILABLE);
      expect(await runCount(reader)).toBe(before);
    });

    it("no token and a wrong token get UNAUTHENTICATED; a read-only token submitting gets PERMISSION_DENIED; no run is created", async () => {
      const before = await runCount(reader);
      const tls = { ca: ca.cert };
      expect(await submitCode(clientOf(tlsServer.address, tls))).toBe(grpc.status.UNAUTHENTICATED);
      expect(await submitCode(clientOf(tlsServer.address, tls, "pw_not-a-token-at-all-0123456789"))).toBe(grpc.status.UNAUTHENTICATED);
      expect(await submitCode(clientOf(tlsServer.address, tls, tokens.read.secret))).toBe(grpc.status.PERMISSION_DENIED);
      expect(await runCount(reader)).toBe(before);
    });

    it("a submit token connecting as a worker gets PERMISSION_DENIED; the worker SDK's start fails with it", async () => {
      const tls = { ca: ca.cert };
      expect(await connectCode(tlsServer.address, tls, tokens.submitRead.secret)).toBe(grpc.status.PERMISSION_DENIED);
      const worker = new Worker({
        log: () => {},
        tasks: [echo],
        address: tlsServer.address,
        tls,
        token: tokens.submitRead.secret,
        reconnectDelayMs: { initial: 50, max: 200 },
      });
      closers.push(() => worker.stop());
      await expect(worker.start()).rejects.toThrow(/server refused the worker: this token lacks the scope worker/);
      expect(worker.state).toBe("stopped");
    });

    it("a worker token cancelling a run gets PERMISSION_DENIED; the run is not cancelled", async () => {
      // No worker runs `nap` here: the run stays queued, so a cancel would show.
      const run = await reader.submit(nap.send(1));
      const before = (await run.get()).state;
      const asWorker = clientOf(tlsServer.address, { ca: ca.cert }, tokens.worker.secret);
      await expect(asWorker.rpc.cancelRun({ runId: run.id }, { deadline: Date.now() + REFUSED_DEADLINE_MS })).rejects.toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: expect.stringMatching(/scope control/),
      });
      const after = (await run.get()).state;
      expect(after).toBe(before);
      expect(after).not.toBe(RunState.CANCELLED);
    });

    // Last: it replaces the server's certificate for good.
    it("once its certificate files hold an expired certificate, new connections are refused (UNAVAILABLE)", async () => {
      copyFileSync(expiredServer.certFile, live.certFile);
      copyFileSync(expiredServer.keyFile, live.keyFile);
      // The server re-reads the files within a second (server/tls.ts); each try is a new client, hence a new connection.
      const expired = { code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/certificate has expired/) };
      const fresh = () => clientOf(tlsServer.address, { ca: ca.cert }, tokens.submitRead.secret);
      await until(
        "a new connection is refused for the expired certificate",
        async () => expect.objectContaining(expired).asymmetricMatch(await listStatus(fresh())),
        15_000,
      );
      // `reader`'s connection was made before: it keeps the good certificate and can still count.
      const before = await runCount(reader);
      expect(await submitStatus(fresh())).toEqual(expired);
      expect(await runCount(reader)).toBe(before);
      // And back: the good certificate again, for the cases that follow.
      copyFileSync(goodServer.certFile, live.certFile);
      copyFileSync(goodServer.keyFile, live.keyFile);
      await until("new connections get the good certificate again", async () => (await listStatus(fresh())).code === grpc.status.OK, 15_000);
    });
  });

  describe("mTLS", () => {
    const good = () => ({ ca: ca.cert, cert: client.cert, key: client.key });

    it("a client and a worker with certificates of the client CA run a pipeline", async () => {
      await startWorker(mtlsServer.address, good());
      const run = await clientOf(mtlsServer.address, good()).submit(echo.send("mtls", network.host));
      expect(await run.result(20_000)).toEqual(["mtls", network.host]);
    });

    it("no client certificate, one from a foreign CA, and an expired one are refused (UNAVAILABLE); no run is created", async () => {
      const reader = clientOf(mtlsServer.address, good());
      const before = await runCount(reader);
      expect(await submitCode(clientOf(mtlsServer.address, { ca: ca.cert }))).toBe(grpc.status.UNAVAILABLE);
      expect(await submitCode(clientOf(mtlsServer.address, { ca: ca.cert, cert: foreignClient.cert, key: foreignClient.key }))).toBe(grpc.status.UNAVAILABLE);
      expect(await submitCode(clientOf(mtlsServer.address, { ca: ca.cert, cert: expiredClient.cert, key: expiredClient.key }))).toBe(grpc.status.UNAVAILABLE);
      expect(await runCount(reader)).toBe(before);
    });
  });

  describe("safe default: no plaintext beyond loopback", () => {
    it("a server without TLS or tokens on a non-loopback address refuses to start, naming --insecure", async () => {
      const db = await createTestDatabase();
      try {
        // A reachable database: the only thing wrong is the exposure.
        const { code, output } = await startRefused(network, ["--address", network.exposedAddress], { DATABASE_URL: network.databaseUrl(db.url) });
        expect(code).toBe(EXIT.internal);
        expect(output).toContain(`--address ${network.exposedAddress} is not a loopback address`);
        expect(output).toMatch(/TLS \(--tls-cert and --tls-key\) and caller authentication .* are missing/);
        expect(output).toMatch(/or pass --insecure/);
        expect(output).not.toMatch(/pipewright listening on/);
      } finally {
        await db.drop();
      }
    });
  });

  describe("Pipewright namespaces (tenancy)", () => {
    it("a token of one namespace cannot read, cancel or run another namespace's runs; nothing of the other's changes", async () => {
      const a = clientOf(tlsServer.address, { ca: ca.cert }, tokens.teamA.secret, "team-a");
      const b = clientOf(tlsServer.address, { ca: ca.cert }, tokens.teamB.secret, "team-b");
      // team-b has a worker for echo (and the default namespace has one from the first case): neither may run team-a's run.
      await startWorker(tlsServer.address, { ca: ca.cert }, tokens.teamBWorker.secret, "team-b");
      const run = await a.submit(echo.send("team-a only"));
      const deadline = () => ({ deadline: Date.now() + REFUSED_DEADLINE_MS });
      expect((await statusOf(b.rpc.getRun({ runId: run.id }, deadline()))).code).toBe(grpc.status.NOT_FOUND);
      expect((await statusOf(b.rpc.cancelRun({ runId: run.id }, deadline()))).code).toBe(grpc.status.NOT_FOUND);
      // team-a's token naming team-b: refused before anything is read.
      const posing = clientOf(tlsServer.address, { ca: ca.cert }, tokens.teamA.secret, "team-b");
      expect(await listStatus(posing)).toEqual({ code: grpc.status.PERMISSION_DENIED, details: "this token is not allowed in the namespace team-b" });
      await new Promise((r) => setTimeout(r, 500));
      const seen = await a.rpc.getRun({ runId: run.id }, deadline());
      expect(seen.run?.state).toBe(RunState.RUNNING); // not cancelled by b, not run by b's or the default namespace's worker
      expect(seen.run?.namespace).toBe("team-a");
      // Its own namespace's worker runs it.
      const aWorkerToken = createToken(`team-a-worker-${label}`, ["worker"], "team-a");
      appendFileSync(tokensFile, `${aWorkerToken.line}\n`);
      await until(
        "team-a's worker token is in force",
        async () => (await connectCode(tlsServer.address, { ca: ca.cert }, aWorkerToken.secret)) !== grpc.status.UNAUTHENTICATED,
        10_000,
      );
      await startWorker(tlsServer.address, { ca: ca.cert }, aWorkerToken.secret, "team-a");
      expect(await run.result(20_000)).toEqual(["team-a only"]);
    });
  });
}

const noNetns = netnsUnavailable();
if (noNetns) console.log(`network.test.ts: the network namespace cases are skipped: ${noNetns}`);

describe.skipIf(!!noNetns)(`across a veth into a network namespace${noNetns ? ` [skipped: ${noNetns}]` : ""}`, () => {
  networkCases("netns", namespaceNetwork);
});

describe("on loopback (127.0.0.1)", () => {
  networkCases("loopback", loopbackNetwork);
});
