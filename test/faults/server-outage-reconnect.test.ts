// After a server outage, the TypeScript client and a worker with the SDK's
// default options are back within ~1 s of the server SERVING again (the
// README promises 5 s). With gRPC's default reconnect backoff (1 s growing
// x1.6 to 120 s) and the worker's old 5 s cap, a 10 s outage left them
// waiting 3-17 s.

import { afterAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import * as ex from "../../examples/tasks.js";
import { gate, openGate, testTasks } from "../support/test-tasks.js";
import { Worker } from "../../worker-sdk/worker.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

const OUTAGE_MS = 10_000;

let ts: TestServer | undefined;
let worker: Worker | undefined;
let client: PipewrightClient | undefined;

afterAll(async () => {
  client?.close();
  await worker?.stop().catch(() => {});
  await ts?.stop();
});

describe("reconnecting after a server outage", () => {
  it(`the client and an SDK-default worker are back within 2 s of SERVING after a ${OUTAGE_MS / 1000} s outage`, async () => {
    ts = await startTestServer();
    worker = new Worker({ address: ts.address, tasks: ex.allTasks }); // SDK defaults: what users get
    await worker.start();
    client = new PipewrightClient(ts.address);
    expect(await client.submitAndWait(ex.multiply.send(3, 2))).toBe(6);

    await ts.stopServer();
    // The client keeps calling through the outage, as an application would.
    let clientBackAt = 0;
    let calling = true;
    const calls = (async () => {
      while (calling) {
        try {
          await client!.rpc.listRuns({ pageSize: 1 }, { deadline: Date.now() + 1000 });
          if (!clientBackAt) clientBackAt = Date.now();
        } catch {
          /* UNAVAILABLE while the server is away */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    clientBackAt = 0;
    await ts.restartServer(); // resolves once SERVING
    const servingAt = Date.now();
    await until("the worker reconnected", () => ts!.server.dispatcher.workerCount > 0, 30_000);
    const workerMs = Date.now() - servingAt;
    await until("the client got an answer", () => clientBackAt > 0, 30_000);
    const clientMs = clientBackAt - servingAt;
    calling = false;
    await calls;
    console.log(`after a ${OUTAGE_MS} ms outage: worker back ${workerMs} ms after SERVING, client ${clientMs} ms`);
    expect(workerMs).toBeLessThan(2000);
    expect(clientMs).toBeLessThan(2000);
    expect(await client.submitAndWait(ex.multiply.send(6, 7))).toBe(42);
  });

  it("a run's wait goes on through a server restart: result() called before the outage returns the run's outcome after it", async () => {
    const own = await startTestServer();
    const w = new Worker({ address: own.address, tasks: testTasks, log: () => {}, reconnectDelayMs: { initial: 50, max: 500 } });
    const c = new PipewrightClient(own.address);
    try {
      await w.start();
      const run = await c.submit(gate.send("through-outage"));
      let settled = false;
      const waiting = run.result(60_000).finally(() => (settled = true));
      await own.stopServer();
      await new Promise((r) => setTimeout(r, 1500));
      expect(settled).toBe(false); // still waiting, not failed with "cannot reach"
      await own.restartServer();
      await until("the worker is back", () => own.server.dispatcher.workerCount > 0, 30_000);
      openGate("through-outage");
      expect(await waiting).toBe("through-outage");
    } finally {
      c.close();
      await Promise.race([w.stop(), new Promise((r) => setTimeout(r, 2000))]);
      await own.stop();
    }
  });
});
