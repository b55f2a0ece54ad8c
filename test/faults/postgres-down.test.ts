// A server process whose PostgreSQL crashes (kill -9 of the postmaster and
// its backends): health says NOT_SERVING and submits answer UNAVAILABLE at
// once while it is down, everything is back within a second or two after it
// returns, and one SIGTERM stops the server even while the database is gone
// and results cannot be committed (issue 10, item 8).

import * as grpc from "@grpc/grpc-js";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import type { Pipeline } from "../../client/pipeline-builder.js";
import * as ex from "../../examples/tasks.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../server/store/embedded-postgres.js";
import { Worker } from "../../worker-sdk/worker.js";
import { crashPostgres, freePort } from "../support/fault-harness.js";
import { healthStatus, spawnServer, type ServerProcess } from "../support/server-process.js";
import { nap, testTasks } from "../support/test-tasks.js";
import { until } from "../support/until.js";

const DRAIN_GRACE_MS = 2000;

let dir = "";
let dataDir = "";
let pgPort = 0;
let pg: EmbeddedPostgres | undefined;
let server: ServerProcess | undefined;
let worker: Worker | undefined;
let client: PipewrightClient | undefined;

const naps = (n: number, ms: number): Pipeline<number> => {
  let p: Pipeline<number> = nap.send(ms);
  for (let i = 1; i < n; i++) p = p.continueWith(nap);
  return p;
};

/** Milliseconds until `check` holds (polled every 10 ms). */
async function timeUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const start = Date.now();
  await until(what, check, timeoutMs);
  return Date.now() - start;
}

const health = () => healthStatus(server!.address).catch((err: grpc.ServiceError) => `error ${err.code}`);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "pipewright-pg-down-"));
  dataDir = path.join(dir, "db");
  pgPort = await freePort();
  pg = await startEmbeddedPostgres({ dataDir, port: pgPort });
  const port = await freePort();
  server = await spawnServer(["--address", `127.0.0.1:${port}`, "--drain-grace-ms", String(DRAIN_GRACE_MS), "--heartbeat-interval-ms", "500"], {
    DATABASE_URL: pg.url,
  });
  worker = new Worker({ address: server.address, tasks: testTasks, slots: 16 });
  await worker.start();
  client = new PipewrightClient(server.address);
});

afterAll(async () => {
  client?.close();
  await Promise.race([worker?.stop(), new Promise((r) => setTimeout(r, 2000))]);
  if (server && server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill("SIGKILL");
    await server.exited;
  }
  await pg?.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("PostgreSQL down under a server process", () => {
  it("health goes NOT_SERVING and submits answer UNAVAILABLE within a second; both recover within 2 s of PostgreSQL returning", async () => {
    const inFlight = await Promise.all(Array.from({ length: 10 }, () => client!.submit(naps(8, 50))));
    await new Promise((r) => setTimeout(r, 200));

    await crashPostgres(dataDir);
    const notServingMs = await timeUntil("health NOT_SERVING", async () => (await health()) === "NOT_SERVING");
    const submitStart = Date.now();
    const refused = await client!.rpc
      .submitRun({ requestId: "while-down", pipeline: ex.multiply.send(2, 3).toProto() }, { deadline: Date.now() + 10_000 })
      .then(
        () => undefined,
        (err: grpc.ServiceError) => err,
      );
    const submitMs = Date.now() - submitStart;

    pg = await startEmbeddedPostgres({ dataDir, port: pgPort });
    const servingMs = await timeUntil("health SERVING", async () => (await health()) === "SERVING");
    const submitStarted = Date.now();
    expect(await client!.submitAndWait(ex.multiply.send(6, 7))).toBe(42);
    const backSubmitMs = Date.now() - submitStarted;
    console.log(
      `PostgreSQL crashed: NOT_SERVING after ${notServingMs} ms, submit refused in ${submitMs} ms; back: SERVING after ${servingMs} ms, a submit and its run took ${backSubmitMs} ms`,
    );

    expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused?.details).toMatch(/database/);
    expect(notServingMs).toBeLessThan(1000);
    expect(submitMs).toBeLessThan(1000);
    expect(servingMs).toBeLessThan(2000);
    // The runs that were in flight through the crash finish correctly.
    expect(await Promise.all(inFlight.map((r) => r.result(60_000)))).toEqual(inFlight.map(() => 50));
    // The server's log (JSON lines: its stdout is a pipe) says the database went and came back.
    const lines = server!
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: string; msg: string; component?: string; down_ms?: number });
    const lost = lines.findIndex((l) => l.msg.startsWith("database unreachable"));
    const back = lines.findIndex((l) => l.msg.startsWith("database reachable again"));
    expect(lines[lost]).toMatchObject({ level: "warn", component: "database" });
    expect(lines[back]).toMatchObject({ level: "info", component: "database", down_ms: expect.any(Number) });
    expect(back).toBeGreaterThan(lost);
  });

  it("one SIGTERM stops the server within the drain grace + 10 s while PostgreSQL is gone and results cannot be committed", async () => {
    await Promise.all(Array.from({ length: 10 }, () => client!.submit(naps(20, 100))));
    await until("tasks running", async () => worker!.runningCount > 0);
    await crashPostgres(dataDir);
    await new Promise((r) => setTimeout(r, 300)); // commits start failing
    const start = Date.now();
    server!.child.kill("SIGTERM");
    const code = await Promise.race([server!.exited, new Promise((r) => setTimeout(() => r("still running"), DRAIN_GRACE_MS + 10_000))]);
    const exitMs = Date.now() - start;
    console.log(`SIGTERM with PostgreSQL gone: exited (${code}) after ${exitMs} ms`);
    expect(code, server!.output().slice(-2000)).not.toBe("still running");
    expect(server!.output()).toMatch(/stopping without committing everything/);
  });
});
