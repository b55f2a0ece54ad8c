// A PostgreSQL restart while runs are in flight: the server keeps its runs in
// memory, fails what it cannot persist back to the callers (UNAVAILABLE) or
// keeps it for later (results), reconnects by itself, and every run finishes
// with its correct result. Uses a PostgreSQL of its own (the shared test
// server must not restart under the other test files).

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { inParallel, type Pipeline } from "../../client/pipeline-builder.js";
import { DEFAULT_CONFIG } from "../../server/config.js";
import { startServer, type RunningServer } from "../../server/server.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../server/store/embedded-postgres.js";
import { Worker } from "../../worker-sdk/worker.js";
import * as ex from "../../examples/tasks.js";
import { nap, testTasks } from "../support/test-tasks.js";
import { freePort } from "../support/fault-harness.js";
import { memoryLog } from "../support/memory-log.js";

let dir = "";
let pg: EmbeddedPostgres | undefined;
let server: RunningServer | undefined;
let worker: Worker | undefined;
let client: PipewrightClient | undefined;

afterAll(async () => {
  client?.close();
  await worker?.stop().catch(() => {});
  await server?.stop().catch(() => {});
  await pg?.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("PostgreSQL restart", () => {
  it("runs in flight finish correctly after the database goes away and comes back", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "pipewright-pg-restart-"));
    const pgPort = await freePort();
    pg = await startEmbeddedPostgres({ dataDir: path.join(dir, "db"), port: pgPort });
    const memory = memoryLog("debug");
    server = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: pg.url, heartbeatIntervalMs: 500 }, memory.logger);
    worker = new Worker({ address: server.address, tasks: testTasks, slots: 16 });
    await worker.start();
    client = new PipewrightClient(server.address);

    // 40 runs, each a chain of 10 naps of 30 ms with a small group in the middle: ~0.4 s each.
    const build = (i: number): Pipeline<number> => {
      let p: Pipeline<number> = nap.send(30);
      for (let k = 0; k < 4; k++) p = p.continueWith(nap);
      return p
        .continueWith(inParallel([ex.add.partial(i), ex.add.partial(1)]))
        .continueWith(ex.sum)
        .continueWith(nap);
    };
    const runs = await Promise.all(Array.from({ length: 40 }, (_, i) => client!.submit(build(i))));

    await new Promise((r) => setTimeout(r, 150));
    await pg.stop(); // connections are terminated; commits fail
    await new Promise((r) => setTimeout(r, 1500));
    pg = await startEmbeddedPostgres({ dataDir: path.join(dir, "db"), port: pgPort });

    const results = await Promise.all(runs.map((r) => r.result(120_000)));
    expect(results).toEqual(Array.from({ length: 40 }, (_, i) => 30 + i + 30 + 1));
    // The outage really hit work in flight.
    expect(memory.messages().some((l) => l.startsWith("commit failed"))).toBe(true);
    if (process.env.PIPEWRIGHT_TEST_LOG) console.log(memory.raw.join(""));

    // Submitting works again too.
    expect(await client.submitAndWait(ex.multiply.send(6, 7))).toBe(42);
  });
});
