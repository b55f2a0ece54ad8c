// Events published from task code through a worker killed with SIGKILL:
// the task runs again on another worker (at-least-once execution), publishes
// again with the same default event ids (run, step path, call rank; not the
// attempt), and the triggers' runs start once per event (exactly-once events).

import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { task } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { killProcess } from "../support/fault-harness.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

/** The same task as test/support/event-worker.ts, which finishes: the second worker's. */
const publishTwice = task("publish_twice", async (label: string) => {
  const ctx = currentTask();
  const first = await ctx.publishEvent("task.step", { label, n: 1 });
  const second = await ctx.publishEvent("task.step", { label, n: 2 });
  return { attempt: ctx.attempt, duplicates: [first.duplicate, second.duplicate] };
});
const echo = task("echo", (...args: unknown[]) => args);

let ts: TestServer;
let doomed: ChildProcess | undefined;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [echo] });
});
afterAll(async () => {
  if (doomed) await killProcess(doomed);
  await ts?.stop();
});

describe("events from task code through a worker's kill -9", () => {
  it("the re-run publishes the same event ids, and each starts its trigger's run once", async () => {
    const client = ts.client();
    await client.triggers.create({ id: "on-step", eventName: "task.step", pipeline: echo.send() });
    let output = "";
    doomed = spawn(process.execPath, ["--import", "tsx", "test/support/event-worker.ts"], {
      env: { ...process.env, PIPEWRIGHT_ADDRESS: ts.address },
      stdio: ["ignore", "pipe", "inherit"],
    });
    doomed.stdout!.on("data", (d) => (output += d));
    await until("the event worker is ready", () => output.includes("event worker ready"), 60_000);
    const run = await client.submit(publishTwice.send("k"));
    await until("the task published", () => output.includes("published"), 30_000);
    await killProcess(doomed);
    const before = await client.events.list({ name: "task.step" });
    expect(before.events.map((e) => e.payload)).toEqual([
      { label: "k", n: 2 },
      { label: "k", n: 1 },
    ]);
    // Another worker takes the attempt back (its worker's stream is gone) and runs it to the end.
    await ts.worker({ tasks: [publishTwice] });
    const result = (await run.result(30_000)) as { attempt: number; duplicates: boolean[] };
    expect(result.attempt).toBeGreaterThan(1);
    expect(result.duplicates).toEqual([true, true]);
    const after = await client.events.list({ name: "task.step" });
    expect(after.events.map((e) => e.eventId)).toEqual(before.events.map((e) => e.eventId));
    const runs = after.events.flatMap((e) => e.runs.map((r) => r.runId));
    expect(runs).toHaveLength(2);
    expect(await Promise.all(runs.map((id) => client.run(id).result(10_000)))).toEqual([[{ label: "k", n: 2 }], [{ label: "k", n: 1 }]]);
    const triggered = await ts.server.sql`select count(*)::int as n from runs where request_id like 'trigger:on-step:%'`;
    expect(triggered[0].n).toBe(2);
  }, 120_000);
});
