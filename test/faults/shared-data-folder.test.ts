// Two servers on one embedded data folder: the second adopts the PostgreSQL
// the first started (reused). When the second stops, or fails to start, the
// database must stay up: before, it stopped it, and the first server stayed
// SERVING with no database (issue 10, item 8).

import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import * as ex from "../../examples/tasks.js";
import { DEFAULT_CONFIG, type ServerConfig } from "../../server/config.js";
import { startServer, type RunningServer } from "../../server/server.js";
import { Worker } from "../../worker-sdk/worker.js";
import { freePort } from "../support/fault-harness.js";
import { healthStatus } from "../support/server-process.js";

let dir = "";
let config: ServerConfig;
let first: RunningServer | undefined;
let worker: Worker | undefined;
let client: PipewrightClient | undefined;

afterAll(async () => {
  client?.close();
  await worker?.stop().catch(() => {});
  await first?.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

const postmasterPid = (): number | undefined => {
  const file = path.join(config.dataDir, "postmaster.pid");
  return existsSync(file) ? Number(readFileSync(file, "utf8").split("\n")[0]) : undefined;
};

async function firstStillWorks(): Promise<void> {
  expect(await first!.sql`select 1 as one`).toEqual([{ one: 1 }]);
  expect(await healthStatus(first!.address)).toBe("SERVING");
  expect(await client!.submitAndWait(ex.multiply.send(6, 7), {})).toBe(42);
}

/** The first server (it starts PostgreSQL on the folder), with a worker and a client; a previous one is stopped first. */
async function startFirst(): Promise<void> {
  client?.close();
  await worker?.stop();
  await first?.stop();
  if (!dir) {
    dir = await mkdtemp(path.join(os.tmpdir(), "pipewright-shared-folder-"));
    config = { ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: "", dataDir: path.join(dir, "db"), embeddedPort: await freePort(), drainGraceMs: 1000 };
  }
  first = await startServer(config);
  expect(first.database).not.toContain("already running");
  worker = new Worker({ address: first.address, tasks: ex.allTasks, slots: 4 });
  await worker.start();
  client = new PipewrightClient(first.address);
}

describe("two servers on one embedded data folder", () => {
  it("the first server's database survives the second one stopping", async () => {
    await startFirst();
    const pid = postmasterPid();
    const second = await startServer(config);
    expect(second.database).toContain("already running");
    await second.stop();

    expect(postmasterPid()).toBe(pid);
    await firstStillWorks();
  });

  it("the first server's database survives the second one failing to start (its gRPC address is taken)", async () => {
    await startFirst();
    await expect(startServer({ ...config, address: first!.address })).rejects.toThrow(/address|bind|port/i);
    await firstStillWorks();
  });

  it("the server that started the database stops it", async () => {
    await startFirst();
    await worker!.stop();
    worker = undefined;
    await first!.stop();
    first = undefined;
    expect(postmasterPid()).toBeUndefined(); // removed by PostgreSQL as it exits
  });
});
