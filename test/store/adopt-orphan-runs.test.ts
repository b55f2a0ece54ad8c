// The takeover of runs whose owner looks dead never takes the caller's own
// runs. During a PostgreSQL restart a server's own heartbeat write took 13 s;
// its takeover check then "adopted" its own runs and reloaded them while their
// commits were in flight (issue 10, item 11).

import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { gate, journal, openGate, resetGates, testTasks } from "../support/test-tasks.js";
import { until } from "../support/until.js";

let ts: TestServer | undefined;
afterEach(() => resetGates());
afterAll(() => ts?.stop());

describe("adoptOrphanRuns", () => {
  it("does not take the caller's own active run when the caller's heartbeat row is late", async () => {
    ts = await startTestServer();
    await ts.worker({ tasks: testTasks, slots: 2 });
    const client = ts.client();
    const run = await client.submit(gate.send("own"));
    await until("the run's task is running", () => journal.includes("start own"));

    const { sql, processId, engine } = ts.server;
    await sql`update server_processes set heartbeat_at = now() - interval '1 hour' where id = ${processId}::uuid`;
    expect(await engine.adoptOrphans()).toBe(0);
    const [row] = await sql<{ owner_id: string }[]>`select owner_id::text from runs where uid = ${run.id}::uuid`;
    expect(row.owner_id).toBe(processId);

    openGate("own");
    expect(await run.result()).toBe("own");
  });
});
