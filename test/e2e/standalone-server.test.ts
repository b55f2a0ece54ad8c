// `npm start` as users run it: its own process, an embedded PostgreSQL in a
// data folder of its own, clean stops and kill -9, with earlier runs intact.

import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { Worker } from "../../worker-sdk/worker.js";
import * as t from "../../examples/tasks.js";
import { healthStatus, spawnServer, type ServerProcess } from "../support/server-process.js";

let dataDir = "";
let current: ServerProcess | undefined;

afterAll(async () => {
  if (current && current.child.exitCode === null) {
    current.child.kill("SIGTERM");
    await current.exited;
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("standalone server with embedded PostgreSQL", () => {
  it("serves, stops cleanly, and comes back after a clean stop and after kill -9 with its runs intact", async () => {
    // Where the data folder lives, as a user would choose it (git-ignored .pipewright/ by default).
    dataDir = await mkdtemp(path.join(os.tmpdir(), "pipewright-standalone-"));
    const args = ["--address", "127.0.0.1:0", "--data-dir", path.join(dataDir, "db")];
    const env = { DATABASE_URL: "" };

    const started = Date.now();
    current = await spawnServer(args, env);
    expect(await healthStatus(current.address)).toBe("SERVING");
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(current.output()).toContain("embedded PostgreSQL");

    const client = new PipewrightClient(current.address);
    const worker = new Worker({ address: current.address, tasks: t.allTasks, slots: 2 });
    await worker.start();
    const run = await client.submit(t.multiply.send(3, 2).continueWith(t.divide, 2));
    expect(await run.result()).toBe(3);
    await worker.stop();
    client.close();

    // Clean stop: exits 0 and stops its embedded database.
    current.child.kill("SIGTERM");
    expect(await current.exited).toBe(0);
    expect(existsSync(path.join(dataDir, "db", "postmaster.pid"))).toBe(false);

    current = await spawnServer(args, env);
    const again = new PipewrightClient(current.address);
    expect((await again.run(run.id).get()).state).toBe(RunState.SUCCEEDED);
    expect(await again.run(run.id).result()).toBe(3);
    again.close();

    // kill -9: the database survives the server and the next start reuses it.
    current.child.kill("SIGKILL");
    await current.exited;
    current = await spawnServer(args, env);
    expect(current.output()).toContain("already running");
    const third = new PipewrightClient(current.address);
    expect(await third.run(run.id).result()).toBe(3);
    third.close();

    current.child.kill("SIGINT");
    expect(await current.exited).toBe(0);
  });
});
