// Schedules end to end on a real server, database and worker: the overlap
// policies with a slow task (SKIP, ALLOW, CANCEL_PREVIOUS), catch-up after the
// server was down (fires within the window started, older ones skipped as one
// range), and pause, resume, trigger and delete.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "@pipewright/protocol";
import { PipewrightClient } from "../../client/client.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { task } from "../../worker-sdk/task.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Takes `ms`, ending early (failing) when its run is cancelled. */
const slow = task("slow_tick", async (ms: number) => {
  const { signal } = currentTask();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
  return ms;
});
const quick = task("quick_tick", (s: string) => s);

let ts: TestServer;
let client: PipewrightClient;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [slow, quick], slots: 16 });
  client = ts.client();
});
afterAll(() => ts?.stop());

interface Fire {
  fire_at: Date;
  outcome: number;
  run_uid: string | null;
  reason: string;
  triggered: boolean;
}
interface RunTimes {
  uid: string;
  state: number;
  created_at: Date;
  finished_at: Date | null;
}

async function firesOf(scheduleId: string): Promise<Fire[]> {
  return ts.server.sql<Fire[]>`
    select f.fire_at, f.outcome, f.run_uid, f.reason, f.triggered from schedule_fires f join schedules s on s.id = f.schedule_id
    where s.schedule_id = ${scheduleId} and s.namespace = 'default' order by f.fire_at`;
}

async function runsOf(name: string): Promise<RunTimes[]> {
  return ts.server.sql<RunTimes[]>`select uid::text, state, created_at, finished_at from runs where name = ${name} order by created_at`;
}

/** Every cron second from the first fire to the last has a fire row (no gap). */
function expectEverySecond(fires: Fire[]): void {
  const cronFires = fires.filter((f) => !f.triggered).map((f) => f.fire_at.getTime());
  for (let i = 1; i < cronFires.length; i++) expect(cronFires[i] - cronFires[i - 1]).toBe(1000);
}

describe("overlap policies with a task slower than the schedule", () => {
  it("SKIP never runs two at once, ALLOW does, CANCEL_PREVIOUS cancels each run for the next", async () => {
    const common = { cron: "* * * * * *", catchupWindowMs: 60_000 };
    await client.schedules.create({ ...common, id: "ov-skip", overlap: "skip", pipeline: slow.send(2500) });
    await client.schedules.create({ ...common, id: "ov-allow", overlap: "allow", pipeline: slow.send(2500) });
    await client.schedules.create({ ...common, id: "ov-cancel", overlap: "cancel_previous", pipeline: slow.send(30_000) });
    await sleep(6000);
    for (const id of ["ov-skip", "ov-allow", "ov-cancel"]) await client.schedules.pause(id);
    await until("no fire pending", async () => (await Promise.all(["ov-skip", "ov-allow", "ov-cancel"].map(firesOf))).flat().every((f) => f.outcome !== 1));

    // SKIP: fires while a run is active start nothing, and say which run; runs follow one another.
    const skipFires = await firesOf("ov-skip");
    expectEverySecond(skipFires);
    const skipped = skipFires.filter((f) => f.outcome === 3);
    expect(skipped.length).toBeGreaterThanOrEqual(2);
    for (const f of skipped) expect(f.reason).toMatch(/^overlap SKIP: run [0-9a-f-]{36} of this schedule is still active$/);
    await until("ov-skip runs finished", async () => (await runsOf("ov-skip")).every((r) => r.finished_at), 10_000);
    const skipRuns = await runsOf("ov-skip");
    expect(skipRuns.length).toBe(skipFires.filter((f) => f.outcome === 2).length);
    expect(skipRuns.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < skipRuns.length; i++) expect(skipRuns[i].created_at.getTime()).toBeGreaterThanOrEqual(skipRuns[i - 1].finished_at!.getTime());

    // ALLOW: every fire starts a run, and they overlap.
    const allowFires = await firesOf("ov-allow");
    expectEverySecond(allowFires);
    expect(allowFires.every((f) => f.outcome === 2)).toBe(true);
    await until("ov-allow runs finished", async () => (await runsOf("ov-allow")).every((r) => r.finished_at), 10_000);
    const allowRuns = await runsOf("ov-allow");
    expect(allowRuns.length).toBe(allowFires.length);
    expect(allowRuns[1].created_at.getTime()).toBeLessThan(allowRuns[0].finished_at!.getTime());
    expect(allowRuns.every((r) => r.state === RunState.SUCCEEDED)).toBe(true);

    // CANCEL_PREVIOUS: every fire starts a run and cancels the one before; only the last is left running.
    const cancelFires = await firesOf("ov-cancel");
    expectEverySecond(cancelFires);
    expect(cancelFires.every((f) => f.outcome === 2)).toBe(true);
    await until("all but the last cancelled", async () => (await runsOf("ov-cancel")).slice(0, -1).every((r) => r.state === RunState.CANCELLED), 10_000);
    const cancelRuns = await runsOf("ov-cancel");
    expect(cancelRuns.length).toBe(cancelFires.length);
    expect(cancelRuns.length).toBeGreaterThanOrEqual(4);
    expect(cancelRuns.at(-1)!.state).toBe(RunState.RUNNING);
    const lastRun = await client.run(cancelRuns.at(-2)!.uid).get();
    expect(lastRun.outcome?.kind.case).toBe("error");
    await client.run(cancelRuns.at(-1)!.uid).cancel("test over");
  }, 60_000);
});

describe("catch-up after the server was down", () => {
  it("starts the fires missed within the window, skips the older ones as one range, and leaves no second uncounted", async () => {
    await client.schedules.create({ id: "catch-up", cron: "* * * * * *", overlap: "allow", catchupWindowMs: 3000, pipeline: quick.send("c") });
    await sleep(2500);
    await ts.stopServer();
    const stoppedAt = Date.now();
    await sleep(7000);
    const restartingAt = Date.now();
    await ts.restartServer();
    await sleep(1500);
    await client.schedules.pause("catch-up");
    await until("no fire pending", async () => (await firesOf("catch-up")).every((f) => f.outcome !== 1));

    const fires = await firesOf("catch-up");
    const missed = fires.filter((f) => f.outcome === 3);
    expect(missed).toHaveLength(1);
    const m = /^missed: the fires from (\S+) to (\S+) came more than the catch-up window \(3000 ms\) before the server looked$/.exec(missed[0].reason);
    expect(m, missed[0].reason).not.toBeNull();
    const [from, to] = [Date.parse(m![1]), Date.parse(m![2])];
    expect(to).toBe(missed[0].fire_at.getTime());
    // Older than the window when the restarted server looked (at the latest ~1 s after its restart).
    expect(to).toBeLessThan(restartingAt - 1000);
    expect(from).toBeGreaterThan(stoppedAt - 1500);
    // Every second accounted for: fires before the stop, the skipped range, then the fires within the window and after.
    const started = fires.filter((f) => f.outcome === 2).map((f) => f.fire_at.getTime());
    const before = started.filter((t) => t < from);
    const after = started.filter((t) => t > to);
    expect(before.length).toBeGreaterThanOrEqual(1);
    expect([...before, ...after]).toEqual(started);
    expect(from - before.at(-1)!).toBe(1000);
    expect(after[0] - to).toBe(1000);
    for (let i = 1; i < after.length; i++) expect(after[i] - after[i - 1]).toBe(1000);
    // The caught-up fires (due before the restart) are those of the window: about 3 of them.
    const caughtUp = after.filter((t) => t < restartingAt);
    expect(caughtUp.length).toBeGreaterThanOrEqual(2);
    expect(caughtUp.length).toBeLessThanOrEqual(4);
    expect(await runsOf("catch-up")).toHaveLength(started.length);
  }, 60_000);
});

describe("pause, resume, trigger, delete", () => {
  it("a paused schedule does not fire (trigger still does), resume does not catch up, delete stops it and keeps its runs", async () => {
    await client.schedules.create({ id: "lifecycle", cron: "* * * * * *", overlap: "allow", pipeline: quick.send("l") });
    await until("a fire", async () => (await firesOf("lifecycle")).length >= 2);
    await client.schedules.pause("lifecycle");
    const pausedAt = Date.now();
    await sleep(300); // a look that claimed just before the pause records its fires
    const atPause = (await firesOf("lifecycle")).length;
    await sleep(2500);
    expect(await firesOf("lifecycle")).toHaveLength(atPause);
    const triggered = await client.schedules.trigger("lifecycle");
    expect(triggered).toMatchObject({ outcome: "started", triggered: true });
    expect(await client.run<string>(triggered.runId!).result(10_000)).toBe("l");
    const resumedAt = Date.now();
    const resumed = await client.schedules.resume("lifecycle");
    expect(resumed.nextFireAt!.getTime()).toBeGreaterThan(resumedAt);
    await until("fires again", async () => (await firesOf("lifecycle")).filter((f) => !f.triggered && f.fire_at.getTime() > resumedAt).length >= 2);
    // Nothing of the paused seconds was caught up: the only fire between the pause and the resume is the trigger.
    const paused = (await firesOf("lifecycle")).filter((f) => f.fire_at.getTime() > pausedAt + 300 && f.fire_at.getTime() < resumedAt);
    expect(paused.map((f) => f.triggered)).toEqual([true]);
    await client.schedules.delete("lifecycle");
    await sleep(300);
    const runs = (await runsOf("lifecycle")).length;
    await sleep(2000);
    expect(await runsOf("lifecycle")).toHaveLength(runs);
    expect(await firesOf("lifecycle")).toEqual([]);
    expect(runs).toBeGreaterThanOrEqual(5);
  }, 30_000);
});
