// Several server processes on one database share the work: a worker connected
// to one process runs tasks of runs submitted to another (its results travel
// to the run's owner through the owner's inbox), and a client can wait on,
// read and cancel a run through any process.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { inParallel } from "../../client/pipeline-builder.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { DEFAULT_CONFIG } from "../../server/config.js";
import { startServer, type RunningServer } from "../../server/server.js";
import { Worker } from "../../worker-sdk/worker.js";
import * as ex from "../../examples/tasks.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import * as t from "../support/test-tasks.js";

let db: TestDatabase;
const servers: RunningServer[] = [];
const clients: PipewrightClient[] = [];
let worker: Worker;

beforeAll(async () => {
  db = await createTestDatabase();
  for (let i = 0; i < 3; i++) servers.push(await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: db.url, heartbeatIntervalMs: 500 }));
  for (const s of servers) clients.push(new PipewrightClient(s.address));
  // The only worker is connected to the first process.
  worker = new Worker({ address: servers[0].address, tasks: t.testTasks, slots: 8 });
  await worker.start();
});
afterAll(async () => {
  await worker?.stop();
  for (const c of clients) c.close();
  for (const s of servers) await s.stop();
  await db?.drop();
});

describe("three server processes on one database", () => {
  it("a worker on process A runs a run submitted to process B; its result reaches B; C sees it", async () => {
    const [a, b, c] = clients;
    const run = await b.submit(
      ex.multiply
        .send(3, 2)
        .continueWith(ex.divide, 2)
        .continueWith(inParallel([ex.add.partial(1), ex.add.partial(2)])),
    );
    const [{ owner_id }] = await servers[0].sql<{ owner_id: string }[]>`select owner_id from runs where uid = ${run.id}::uuid`;
    expect(owner_id).toBe(servers[1].processId);
    expect(await c.run<number[]>(run.id).result()).toEqual([4, 5]); // waited on through C
    expect(await a.run(run.id).result()).toEqual([4, 5]);
    const full = await c.run(run.id).get(true);
    expect(full.steps.map((s) => s.path)).toContain("steps[2].group.branches[1].steps[0]");
    expect(full.state).toBe(RunState.SUCCEEDED);
  });

  it("many runs submitted to every process all complete on the one worker", async () => {
    const runs = await Promise.all(Array.from({ length: 60 }, (_, i) => clients[i % 3].submit(ex.multiply.send(i, 2).continueWith(ex.add, 1))));
    const results = await Promise.all(runs.map((r, i) => clients[(i + 1) % 3].run<number>(r.id).result()));
    expect(results).toEqual(Array.from({ length: 60 }, (_, i) => i * 2 + 1));
  });

  it("a cancel sent to a process that does not own the run reaches its owner", async () => {
    const run = await clients[1].submit(t.gate.send("mp-gate").finallyDo(ex.cleanup));
    for (let i = 0; i < 200 && !t.journal.includes("start mp-gate"); i++) await new Promise((r) => setTimeout(r, 20));
    const view = await clients[2].run(run.id).cancel("from C");
    expect([RunState.CANCELLING, RunState.CANCELLED]).toContain(view.state);
    const done = await clients[0].run(run.id).wait();
    expect(done.state).toBe(RunState.CANCELLED);
    expect(t.journal).toContain("aborted mp-gate");
    t.resetGates();
  });

  it("a wait through a process that does not own the run is woken by the owner's announcement, not by polling", async () => {
    // A fourth process D whose safety-net poll is longer than the test may take: only B's announcement can end these waits.
    const d = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: db.url, heartbeatIntervalMs: 500, remoteWaitPollMs: 60_000 });
    const viaD = new PipewrightClient(d.address);
    try {
      const one = await clients[1].submit(t.gate.send("mp-announce").continueWith(t.echo));
      const many = await clients[1].submitMany([t.gate.send("mp-announce-2"), t.gate.send("mp-announce-3")]);
      const waitOne = viaD.run(one.id).result(); // WaitRun through D
      const waitMany = viaD.waitAll(many.map((h) => h.id)); // WaitRuns through D
      await new Promise((r) => setTimeout(r, 300)); // both waits are asleep on D by now
      for (const g of ["mp-announce", "mp-announce-2", "mp-announce-3"]) t.openGate(g);
      expect(await waitOne).toEqual(["mp-announce"]);
      expect((await waitMany).map((r) => r.state)).toEqual([RunState.SUCCEEDED, RunState.SUCCEEDED]);
    } finally {
      viaD.close();
      await d.stop();
      t.resetGates();
    }
  }, 20_000);

  it("pause and resume through a process that does not own the run", async () => {
    const run = await clients[1].submit(t.gate.send("mp-pause").continueWith(t.echo));
    for (let i = 0; i < 200 && !t.journal.includes("start mp-pause"); i++) await new Promise((r) => setTimeout(r, 20));
    expect((await clients[0].run(run.id).pause()).state).toBe(RunState.PAUSED);
    t.openGate("mp-pause");
    await new Promise((r) => setTimeout(r, 300));
    expect((await clients[2].run(run.id).get()).state).toBe(RunState.PAUSED);
    await clients[2].run(run.id).resume();
    expect(await clients[0].run(run.id).result()).toEqual(["mp-pause"]);
    t.resetGates();
  });
});
