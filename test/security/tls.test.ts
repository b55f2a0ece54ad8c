// TLS and mTLS on loopback, with certificates made by openssl in the test: a
// client and a worker with the right CA run a pipeline end to end; a wrong CA,
// an expired certificate, a plaintext client, and (mTLS) a missing or foreign
// client certificate are refused; the metrics endpoint speaks HTTPS with the
// same certificate; replacing the certificate files on disk changes what new
// connections get, without a restart. And the safe default: plaintext on a
// non-loopback address is refused at start unless --insecure.

import { copyFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { Worker } from "../../worker-sdk/worker.js";
import { DEFAULT_CONFIG, parseConfig } from "../../server/config.js";
import { startServer } from "../../server/server.js";
import { checkExposure, isLoopback } from "../../server/tls.js";
import { runCli, type Io } from "../../server/cli/program.js";
import { EXIT } from "../../server/cli/output.js";
import { channelCredentials, tlsFromEnvironment, type TlsOptions } from "@pipewright/protocol";
import { Certificates, type Pem } from "../support/certificates.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { echo } from "../support/test-tasks.js";
import { until } from "../support/until.js";

const certs = new Certificates();
let ca: Pem, otherCa: Pem, server: Pem, expired: Pem, client: Pem, foreignClient: Pem, expiredClient: Pem;
const closers: (() => unknown)[] = [];

beforeAll(() => {
  ca = certs.ca("ca");
  otherCa = certs.ca("other-ca");
  server = certs.issue("server", ca, "server");
  expired = certs.issue("expired", ca, "server", { expired: true });
  client = certs.issue("client", ca, "client");
  foreignClient = certs.issue("foreign-client", otherCa, "client");
  expiredClient = certs.issue("expired-client", ca, "client", { expired: true });
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  certs.remove();
});

function clientWith(address: string, tls?: TlsOptions): PipewrightClient {
  const c = new PipewrightClient(address, { tls });
  closers.push(() => c.close());
  return c;
}

/** The gRPC status code of a ListRuns call (0: it worked). */
async function listCode(c: PipewrightClient): Promise<number> {
  try {
    await c.rpc.listRuns({ pageSize: 1 }, { deadline: Date.now() + 5000 });
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

async function startWorker(address: string, tls: TlsOptions): Promise<Worker> {
  const w = new Worker({ log: () => {}, tasks: [echo], address, tls, reconnectDelayMs: { initial: 50, max: 500 } });
  closers.push(() => w.stop());
  await w.start();
  return w;
}

function httpsGet(address: string, options: https.RequestOptions): Promise<number> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const req = https.get({ host, port, path: "/metrics", ...options }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
}

describe("TLS", () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer({ tlsCert: server.certFile, tlsKey: server.keyFile, metricsAddress: "127.0.0.1:0" });
    closers.push(() => ts.stop());
  });

  it("a client and a worker that trust the CA run a pipeline end to end", async () => {
    await startWorker(ts.address, { ca: ca.cert });
    const c = clientWith(ts.address, { ca: ca.cert.toString() }); // PEM as a string works too
    const run = await c.submit(echo.send("over", "tls"));
    expect(await run.result()).toEqual(["over", "tls"]);
  });

  it("a client that trusts another CA gets UNAVAILABLE", async () => {
    expect(await listCode(clientWith(ts.address, { ca: otherCa.cert }))).toBe(grpc.status.UNAVAILABLE);
  });

  it("a plaintext client gets UNAVAILABLE", async () => {
    expect(await listCode(clientWith(ts.address))).toBe(grpc.status.UNAVAILABLE);
  });

  it("the metrics endpoint speaks HTTPS with the same certificate", async () => {
    const address = ts.server.metricsAddress!;
    expect(await httpsGet(address, { ca: ca.cert })).toBe(200);
    await expect(httpsGet(address, { ca: otherCa.cert })).rejects.toThrow();
    // Plain HTTP to it gets no metrics.
    await expect(fetch(`http://${address}/metrics`).then((r) => r.status)).rejects.toThrow();
  });

  it("the CLI takes --tls-ca", async () => {
    let out = "";
    let err = "";
    const io: Io = { out: (t) => (out += t), err: (t) => (err += t), stdin: () => "", isTTY: false, rows: 40 };
    expect(await runCli(["list", "--address", ts.address, "--tls-ca", ca.certFile, "-o", "json"], io)).toBe(0);
    expect(err).toBe("");
    expect(out).toContain("RUN_STATE_SUCCEEDED");
    out = err = "";
    expect(await runCli(["list", "--address", ts.address, "--tls-ca", otherCa.certFile], io)).toBe(EXIT.unavailable);
    expect(err).toContain(ts.address);
    expect(await runCli(["status", "--address", ts.address, "--tls-ca", ca.certFile], io)).toBe(0);
  });
});

describe("TLS with tokens", () => {
  it("the token travels over TLS: with it the call works, without it UNAUTHENTICATED", async () => {
    const token = "tls-test-admin-token-0123456789";
    const ts = await startTestServer({ tlsCert: server.certFile, tlsKey: server.keyFile, adminToken: token });
    closers.push(() => ts.stop());
    const withToken = new PipewrightClient(ts.address, { tls: { ca: ca.cert }, token });
    closers.push(() => withToken.close());
    expect(await listCode(withToken)).toBe(grpc.status.OK);
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe("an expired server certificate", () => {
  it("is refused by the client (UNAVAILABLE)", async () => {
    const ts = await startTestServer({ tlsCert: expired.certFile, tlsKey: expired.keyFile });
    closers.push(() => ts.stop());
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.UNAVAILABLE);
  });
});

describe("mTLS", () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer({ tlsCert: server.certFile, tlsKey: server.keyFile, tlsClientCa: ca.certFile, metricsAddress: "127.0.0.1:0" });
    closers.push(() => ts.stop());
  });

  it("a client and a worker with certificates signed by the client CA run a pipeline", async () => {
    const tls = { ca: ca.cert, cert: client.cert, key: client.key };
    await startWorker(ts.address, tls);
    const run = await clientWith(ts.address, tls).submit(echo.send(42));
    expect(await run.result()).toEqual([42]);
  });

  it("a client without a certificate, with one from another CA, or with an expired one is refused", async () => {
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.UNAVAILABLE);
    expect(await listCode(clientWith(ts.address, { ca: ca.cert, cert: foreignClient.cert, key: foreignClient.key }))).toBe(grpc.status.UNAVAILABLE);
    expect(await listCode(clientWith(ts.address, { ca: ca.cert, cert: expiredClient.cert, key: expiredClient.key }))).toBe(grpc.status.UNAVAILABLE);
  });

  it("the CLI takes --tls-cert and --tls-key", async () => {
    let err = "";
    const io: Io = { out: () => {}, err: (t) => (err += t), stdin: () => "", isTTY: false, rows: 40 };
    const base = ["list", "--address", ts.address, "--tls-ca", ca.certFile];
    expect(await runCli([...base, "--tls-cert", client.certFile, "--tls-key", client.keyFile], io)).toBe(0);
    expect(err).toBe("");
    expect(await runCli(base, io)).not.toBe(0);
    expect(await runCli([...base, "--tls-cert", client.certFile], io)).toBe(EXIT.usage);
    expect(err).toContain("--tls-cert and --tls-key go together");
  });

  it("the metrics endpoint asks for a client certificate too", async () => {
    const address = ts.server.metricsAddress!;
    expect(await httpsGet(address, { ca: ca.cert, cert: client.cert, key: client.key })).toBe(200);
    await expect(httpsGet(address, { ca: ca.cert })).rejects.toThrow();
  });

  it("the client reads PIPEWRIGHT_TLS_CA, _CERT and _KEY when given no options", async () => {
    const env = { PIPEWRIGHT_TLS_CA: ca.certFile, PIPEWRIGHT_TLS_CERT: client.certFile, PIPEWRIGHT_TLS_KEY: client.keyFile };
    expect(tlsFromEnvironment(env)).toEqual({ ca: ca.cert, cert: client.cert, key: client.key });
    expect(tlsFromEnvironment({})).toBeUndefined();
    expect(() => channelCredentials({ ca: ca.cert, cert: client.cert })).toThrow(/cert and key/);
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      expect(await listCode(clientWith(ts.address))).toBe(grpc.status.OK);
    } finally {
      for (const k of Object.keys(env)) if (!(k in saved)) delete process.env[k];
    }
  });
});

describe("certificate rotation", () => {
  it("new connections get the certificate written to disk later, without a restart", async () => {
    const [certFile, keyFile] = [path.join(certs.dir, "live.pem"), path.join(certs.dir, "live.key")];
    copyFileSync(server.certFile, certFile);
    copyFileSync(server.keyFile, keyFile);
    const ts = await startTestServer({ tlsCert: certFile, tlsKey: keyFile });
    closers.push(() => ts.stop());
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.OK);

    // A half-written pair (new certificate, old key) is ignored: the old one still serves.
    const next = certs.issue("next", otherCa, "server");
    writeFileSync(certFile, next.cert);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.OK);

    writeFileSync(keyFile, next.key);
    await until("a new connection trusting the new CA succeeds", async () => (await listCode(clientWith(ts.address, { ca: otherCa.cert }))) === grpc.status.OK);
    expect(await listCode(clientWith(ts.address, { ca: ca.cert }))).toBe(grpc.status.UNAVAILABLE);
  });
});

describe("safe default: no plaintext beyond loopback", () => {
  it("a non-loopback address without TLS, or without tokens or client certificates, is refused at start, naming --insecure", async () => {
    const config = { ...DEFAULT_CONFIG, address: "0.0.0.0:0", databaseUrl: "postgres://nowhere.invalid/x" };
    await expect(startServer(config)).rejects.toThrow(/--insecure/);
    expect(() => checkExposure({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", metricsAddress: ":0" }, false)).toThrow(/--metrics-address.*--insecure/);
    expect(() => checkExposure({ ...DEFAULT_CONFIG, address: "[::]:50051" }, true)).toThrow(/TLS.*--insecure/);
    expect(() => checkExposure({ ...DEFAULT_CONFIG, address: "unix:/tmp/pipewright.sock" }, false)).not.toThrow();
    // TLS alone is not enough on the gRPC port: callers must be authenticated (tokens or client certificates).
    const tls = { tlsCert: server.certFile, tlsKey: server.keyFile };
    expect(() => checkExposure({ ...DEFAULT_CONFIG, ...tls, address: "0.0.0.0:0" }, false)).toThrow(/caller authentication.*--insecure/);
    expect(() => checkExposure({ ...DEFAULT_CONFIG, ...tls, address: "0.0.0.0:0" }, true)).not.toThrow();
    expect(() => checkExposure({ ...DEFAULT_CONFIG, ...tls, address: "0.0.0.0:0", tlsClientCa: ca.certFile }, false)).not.toThrow();
    // The metrics port has no tokens: TLS is what it needs.
    expect(() => checkExposure({ ...DEFAULT_CONFIG, ...tls, metricsAddress: "0.0.0.0:0" }, false)).not.toThrow();
    await expect(startServer({ ...config, ...tls })).rejects.toThrow(/caller authentication.*--insecure/);
    for (const ok of ["127.0.0.1", "127.1.2.3", "localhost", "[::1]", "::1"]) expect(isLoopback(ok)).toBe(true);
    for (const no of ["0.0.0.0", "", "[::]", "10.0.0.1", "example.com"]) expect(isLoopback(no)).toBe(false);
  });

  it("with --insecure it starts and serves plaintext", async () => {
    expect(parseConfig(["--insecure"], {}).insecure).toBe(true);
    expect(parseConfig([], { PIPEWRIGHT_INSECURE: "1" }).insecure).toBe(true);
    const ts = await startTestServer({ address: "0.0.0.0:0", insecure: true });
    closers.push(() => ts.stop());
    const port = ts.address.slice(ts.address.lastIndexOf(":") + 1);
    expect(await listCode(clientWith(`127.0.0.1:${port}`))).toBe(grpc.status.OK);
  });

  it("with TLS and tokens a non-loopback address needs no --insecure", async () => {
    const token = "tls-test-admin-token-0123456789";
    const ts = await startTestServer({ address: "0.0.0.0:0", tlsCert: server.certFile, tlsKey: server.keyFile, adminToken: token });
    closers.push(() => ts.stop());
    const port = ts.address.slice(ts.address.lastIndexOf(":") + 1);
    const c = new PipewrightClient(`127.0.0.1:${port}`, { tls: { ca: ca.cert }, token });
    closers.push(() => c.close());
    expect(await listCode(c)).toBe(grpc.status.OK);
  });

  it("with mTLS (client certificates, no tokens) a non-loopback address needs no --insecure", async () => {
    const ts = await startTestServer({ address: "0.0.0.0:0", tlsCert: server.certFile, tlsKey: server.keyFile, tlsClientCa: ca.certFile });
    closers.push(() => ts.stop());
    const port = ts.address.slice(ts.address.lastIndexOf(":") + 1);
    expect(await listCode(clientWith(`127.0.0.1:${port}`, { ca: ca.cert, cert: client.cert, key: client.key }))).toBe(grpc.status.OK);
  });

  it("TLS options that do not fit together are refused at start", async () => {
    await expect(startServer({ ...DEFAULT_CONFIG, tlsCert: server.certFile })).rejects.toThrow(/--tls-key/);
    await expect(startServer({ ...DEFAULT_CONFIG, tlsClientCa: ca.certFile })).rejects.toThrow(/--tls-cert/);
    await expect(startServer({ ...DEFAULT_CONFIG, tlsCert: server.certFile, tlsKey: client.keyFile })).rejects.toThrow(/--tls-cert/);
    await expect(startServer({ ...DEFAULT_CONFIG, tlsCert: "/nonexistent.pem", tlsKey: server.keyFile })).rejects.toThrow(/cannot read/);
  });
});
