// What the embedded PostgreSQL changes outside its data folder is said at
// info, the default level (its routine lines are debug): as root, a folder on the way that the postgres OS
// user cannot traverse gets the o+x bit, and the server says so.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { memoryLog } from "../support/memory-log.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../server/store/embedded-postgres.js";

let folder = "";
let pg: EmbeddedPostgres | undefined;
afterAll(async () => {
  await pg?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe("embedded PostgreSQL notices", () => {
  it("says it added o+x to a folder on the way, at the default level info", async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('only as root does the server change folder modes (it runs PostgreSQL as OS user "postgres")');
    folder = await mkdtemp(path.join(os.tmpdir(), "pipewright-notice-")); // mode 0700: "postgres" cannot traverse it
    const log = memoryLog("info");
    pg = await startEmbeddedPostgres({ dataDir: path.join(folder, "db"), log: log.logger });
    expect(log.lines().every((l) => l.level === "info")).toBe(true);
    expect(log.messages()).toContainEqual(`added o+x to ${folder} so that OS user "postgres" can reach the PostgreSQL files below it`);
  }, 120_000);
});
