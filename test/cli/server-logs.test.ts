// `pipewright server`'s log as an operator sets it: --log-level and
// PIPEWRIGHT_LOG_LEVEL, --log-format. The server runs as its own process
// (server/main.ts, what `npm start` and `pipewright server` run), its stdout
// piped (so JSON lines unless told otherwise), a real database and worker.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import * as ex from "../../examples/tasks.js";
import { runCli, type Io } from "../../server/cli/program.js";
import { EXIT } from "../../server/cli/output.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { until } from "../support/until.js";

let db: TestDatabase;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill("SIGKILL");
  await db?.drop();
});

/** Starts a server with these flags and environment, runs a worker and two runs (one failing) on it, stops it with SIGTERM; returns its output. */
async function serveOnce(args: string[], env: Record<string, string> = {}, logsDisconnect = true): Promise<string> {
  const server = await spawnServer(["--address", "127.0.0.1:0", "--database-url", db.url, "--drain-grace-ms", "1000", ...args], env);
  servers.push(server);
  const client = new PipewrightClient(server.address);
  const worker = new Worker({ address: server.address, tasks: ex.allTasks, slots: 2, log: () => {} });
  try {
    await worker.start();
    expect(await client.submitAndWait(ex.multiply.send(3, 2))).toBe(6);
    await (await client.submit(ex.fail.send("no"))).wait();
  } finally {
    await worker.stop();
    client.close();
  }
  // The worker's goodbye is logged (at info) before the server is told to stop.
  if (logsDisconnect) await until("the worker's disconnect was logged", () => / disconnected/.test(server.output()), 5000);
  server.child.kill("SIGTERM");
  expect(await server.exited).toBe(0);
  return server.output();
}

const parse = (out: string) =>
  out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { level: string; msg: string; component?: string; [k: string]: unknown });

describe("pipewright server's log", () => {
  it("--log-level warn: JSON lines, no info or debug line but the one saying where it listens", async () => {
    const lines = parse(await serveOnce(["--log-level", "warn"], {}, false));
    const quiet = lines.filter((l) => l.level === "info" || l.level === "debug" || l.level === "trace");
    expect(quiet.map((l) => l.msg)).toEqual([expect.stringMatching(/^pipewright listening on 127\.0\.0\.1:\d+, database: /)]);
    expect(quiet[0]).toMatchObject({ component: "cli", address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it("PIPEWRIGHT_LOG_LEVEL=debug: lifecycle at info, each run accepted and finished at debug (default info: the failed run only)", async () => {
    const lines = parse(await serveOnce([], { PIPEWRIGHT_LOG_LEVEL: "debug" }));
    const levelOf = (msg: RegExp) => lines.filter((l) => msg.test(l.msg)).map((l) => l.level);
    expect(levelOf(/^server started$/)).toEqual(["info"]);
    expect(levelOf(/^worker .* connected/)).toEqual(["info"]);
    expect(levelOf(/^worker .* disconnected/)).toEqual(["info"]);
    expect(levelOf(/^SIGTERM: draining/)).toEqual(["info"]);
    expect(levelOf(/^run accepted$/)).toEqual(["debug", "debug"]);
    expect(levelOf(/^run finished$/).sort()).toEqual(["debug", "info"]);
    for (const l of lines.filter((x) => /^run (accepted|finished)$/.test(x.msg))) expect(l.run_id).toMatch(/^[0-9a-f-]{36}$/);

    // The default level (info) keeps the lifecycle and the failed run, not the routine.
    const byDefault = parse(await serveOnce([]));
    expect(byDefault.some((l) => /^worker .* connected/.test(l.msg))).toBe(true);
    expect(byDefault.filter((l) => l.msg === "run finished").map((l) => l.state)).toEqual(["FAILED"]);
    expect(byDefault.filter((l) => l.level === "debug")).toEqual([]);
  });

  it("--log-format pretty: one human line per event, not JSON", async () => {
    const out = await serveOnce(["--log-format", "pretty", "--log-level", "info"]);
    const connected = out.split("\n").find((l) => / connected: /.test(l));
    expect(connected).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: dispatch: worker [0-9a-f-]{36} connected: /);
    expect(() => JSON.parse(connected!)).toThrow();
  });

  it("an unknown level or format is a usage error (exit 64) naming the choices", async () => {
    let err = "";
    const io: Io = { out: () => {}, err: (t) => (err += t), stdin: () => "", isTTY: false };
    expect(await runCli(["server", "--log-level", "loud"], io)).toBe(EXIT.usage);
    expect(err).toContain("--log-level / PIPEWRIGHT_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent");
    err = "";
    expect(await runCli(["server", "--log-format", "xml"], io)).toBe(EXIT.usage);
    expect(err).toContain("--log-format / PIPEWRIGHT_LOG_FORMAT must be one of auto, json, pretty");
  });
});
