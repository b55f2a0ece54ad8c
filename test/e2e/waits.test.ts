// Wait steps end to end (issue 16, items 3 and 4): durable sleep holding no
// worker slot, cancel ending a wait at once, signals (kept before the step is
// reached, delivered, repeated, refused), signal and event timeouts, event
// waits, and a sleep and a signal wait surviving a server process killed with
// SIGKILL, with the signal sent through another server process than the
// run's owner.

import * as grpc from "@grpc/grpc-js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, encodeValue, RunState, RunView, StepKind, StepState } from "@pipewright/protocol";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { PipewrightClient, RunFailedError } from "../../client/client.js";
import { inParallel, sleep, waitForEvent, waitForSignal } from "../../client/pipeline-builder.js";
import { task } from "../../worker-sdk/task.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort, resilient } from "../support/fault-harness.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

/** When each key's task ran (ms since the epoch), in this process. */
const ranAt = new Map<string, number>();
const stamp = task("stamp", (key: unknown) => {
  ranAt.set(String(key), Date.now());
  return key;
});

let ts: TestServer;
let client: PipewrightClient;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [stamp], slots: 1 }); // one slot: a sleeping run must not hold it
  client = ts.client();
});
afterAll(() => ts?.stop());

async function stepOf(runId: string, kind = StepKind.WAIT) {
  const run = (await client.rpc.getRun({ runId, view: RunView.FULL })).run!;
  return run.steps.find((s) => s.kind === kind)!;
}

async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = (await p.then(
    () => undefined,
    (e) => e,
  )) as grpc.ServiceError;
  expect(err, "the call should have been refused").toBeDefined();
  return err;
}

describe("durable sleep", () => {
  it("holds no worker slot: another run uses the only slot meanwhile; the next step runs after the sleep, with the result passed on", async () => {
    const sleeper = await client.submit(stamp.send("sleeper-1").sleep(1500).continueWith(stamp));
    await until("the first stamp", () => ranAt.has("sleeper-1"), 5000);
    const wait = await stepOf(sleeper.id);
    expect([StepState[wait.state], wait.waitingFor, wait.displayName]).toEqual(["WAITING", "sleep 1500ms", "sleep 1500ms"]);
    const wakesAt = timestampMs(wait.wakeTime!);
    const other = await client.submit(stamp.send("during-sleep"));
    expect(await other.result(5000)).toBe("during-sleep");
    expect(ranAt.get("during-sleep")!).toBeLessThan(wakesAt);
    expect(await sleeper.result(10_000)).toBe("sleeper-1"); // the sleep passed "sleeper-1" on to the second stamp
    expect(ranAt.get("sleeper-1")!).toBeGreaterThanOrEqual(wakesAt);
    expect(StepState[(await stepOf(sleeper.id)).state]).toBe("SUCCEEDED");
  });

  it("a cancel ends a run sleeping for an hour at once", async () => {
    const run = await client.submit(sleep(3600_000).continueWith(stamp.send("never-after-sleep")));
    await until("the wait step waiting", async () => (await stepOf(run.id)).state === StepState.WAITING, 5000);
    await run.cancel("not today");
    const ended = await run.wait(5000);
    expect(ended.state).toBe(RunState.CANCELLED);
    expect(StepState[(await stepOf(run.id)).state]).toBe("CANCELLED");
    expect(ranAt.has("never-after-sleep")).toBe(false);
  });
});

describe("signals", () => {
  it("a signal resumes the waiting step; its payload is the step's result", async () => {
    const run = await client.submit(waitForSignal<{ approved: boolean }>("approve").continueWith(stamp));
    await until("the wait step waiting", async () => (await stepOf(run.id)).state === StepState.WAITING, 5000);
    expect((await stepOf(run.id)).waitingFor).toBe("signal approve");
    const sent = await run.signal("approve", "approved-by-ann");
    expect(sent.delivery).toBe("delivered");
    expect(await run.result(5000)).toBe("approved-by-ann");
  });

  it("a signal sent before the step is reached is kept until it is; a repeated signal id counts once", async () => {
    const run = await client.submit(sleep(700).waitForSignal("go").continueWith(stamp).waitForSignal("go").continueWith(stamp));
    const first = await run.signal("go", "first", { signalId: "webhook-1" });
    const again = await run.signal("go", "first-again", { signalId: "webhook-1" });
    expect([first.delivery, again.delivery]).toEqual(["kept", "duplicate"]);
    await until("the first signal taken", () => ranAt.has("first"), 5000); // kept through the sleep, then taken by the first wait
    expect(StepState[(await client.rpc.getRun({ runId: run.id, view: RunView.FULL })).run!.steps[3].state]).toBe("WAITING"); // the repeat was not kept
    await run.signal("go", "second");
    expect(await run.result(5000)).toBe("second");
  });

  it("a signal wait times out with pipewright.Timeout", async () => {
    const run = await client.submit(waitForSignal("never", { timeoutMs: 400 }));
    const err = await run.result(5000).catch((e) => e);
    expect(err).toBeInstanceOf(RunFailedError);
    expect((err as RunFailedError).error.type).toBe("pipewright.Timeout");
    expect((err as RunFailedError).error.message).toContain("signal never");
  });

  it("a finished run refuses a signal clearly; an unknown run is NOT_FOUND; bad fields are each named", async () => {
    const done = await client.submit(stamp.send("finished-run"));
    await done.result(5000);
    const finished = await refusal(done.signal("approve", 1));
    expect(finished.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(finished.details).toBe(`run ${done.id} has already finished: a signal can no longer reach it`);
    const unknown = await refusal(client.rpc.signalRun({ runId: "00000000-0000-4000-8000-000000000000", name: "x" }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    const bad = await refusal(client.rpc.signalRun({ runId: "nope", name: "has space", signalId: "x".repeat(201) }));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/run_id: must be a run id/);
    expect(bad.details).toMatch(/name: must hold only letters, digits/);
    expect(bad.details).toMatch(/signal_id: must be at most 200 characters/);
    const huge = await refusal(client.rpc.signalRun({ runId: done.id, name: "big", payload: { kind: { case: "list", value: { items: nest(300) } } } }));
    expect(huge.details).toMatch(/payload\.list\.items\[0\].*: values \(lists, maps, errors\) nest at most 256 levels deep/); // refused as it is decoded
  });

  it("a run in another namespace cannot be signalled (NOT_FOUND)", async () => {
    const run = await client.submit(waitForSignal("ns-approve").continueWith(stamp));
    const other = new PipewrightClient(ts.address, { namespace: "elsewhere" });
    try {
      const err = await refusal(other.run(run.id).signal("ns-approve", "intruder"));
      expect(err.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      other.close();
    }
    await run.signal("ns-approve", "owner");
    expect(await run.result(5000)).toBe("owner");
  });
});

describe("event waits", () => {
  it("a published event ends every step waiting for it (its payload their result); one published before the wait began, or in another namespace, does not", async () => {
    // Published before the waits begin (before the run is even submitted: no race with a fast first step).
    await client.events.publish("order.paid", "too-early", { eventId: "e0" });
    const run = await client.submit(stamp.send("before-event").continueWith(inParallel([waitForEvent("order.paid"), waitForEvent("order.paid")])));
    await until("both waits begun", async () => {
      const steps = (await client.rpc.getRun({ runId: run.id, view: RunView.FULL })).run!.steps;
      return steps.filter((s) => s.kind === StepKind.WAIT && s.state === StepState.WAITING).length === 2;
    });
    const other = new PipewrightClient(ts.address, { namespace: "other-namespace" });
    try {
      await other.events.publish("order.paid", "wrong-namespace", { eventId: "e1" });
    } finally {
      other.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect((await run.get()).state).toBe(RunState.RUNNING);
    await client.events.publish("order.paid", "paid-42", { eventId: "e2" });
    expect(await run.result(5000)).toEqual(["paid-42", "paid-42"]);
  });

  it("the same event delivered twice ends no more waits than once", async () => {
    const run = await client.submit(waitForEvent("twice").waitForEvent("twice"));
    await until("the first wait begun", async () => (await stepOf(run.id)).state === StepState.WAITING);
    expect(await ts.server.engine.deliverEvent("default", { id: "same", name: "twice", payload: encodeValue(1) })).toBe(1);
    await until("the second wait begun", async () => {
      const steps = (await client.rpc.getRun({ runId: run.id, view: RunView.FULL })).run!.steps;
      return steps[1].state === StepState.WAITING;
    });
    await ts.server.engine.deliverEvent("default", { id: "same", name: "twice", payload: encodeValue(2) }); // a publisher's retry
    await new Promise((r) => setTimeout(r, 300));
    expect((await run.get()).state).toBe(RunState.RUNNING);
    await client.events.publish("twice", 3, { eventId: "another" });
    expect(await run.result(5000)).toBe(3);
  });

  it("an event wait times out with pipewright.Timeout", async () => {
    const run = await client.submit(waitForEvent("never.published", { timeoutMs: 300 }));
    const err = await run.result(5000).catch((e) => e);
    expect((err as RunFailedError).error.type).toBe("pipewright.Timeout");
  });
});

describe("parked runs: a run that only waits leaves memory and comes back", () => {
  let parking: TestServer;
  let pc: PipewrightClient;
  beforeAll(async () => {
    parking = await startTestServer({ parkWaitsOverMs: 300 });
    await parking.worker({ tasks: [stamp], slots: 2 });
    pc = parking.client();
  });
  afterAll(() => parking?.stop());

  const parkedRow = async (id: string) =>
    (await parking.server.sql<{ parked: boolean; wake_at: Date | null }[]>`select parked, wake_at from runs where uid = ${id}`)[0];
  const held = () => parking.server.engine.stats().activeRuns;

  it("a run waiting for a signal is parked (out of memory), shown as waiting, and a signal brings it back and resumes it", async () => {
    const run = await pc.submit(waitForSignal("wake-up").continueWith(stamp));
    await until("the run parked", async () => (await parkedRow(run.id)).parked, 5000);
    expect(held()).toBe(0);
    expect((await parkedRow(run.id)).wake_at).toBeNull(); // nothing but a signal brings it back
    const seen = (await pc.rpc.getRun({ runId: run.id, view: RunView.FULL })).run!;
    expect([RunState[seen.state], StepState[seen.steps[0].state], seen.steps[0].waitingFor]).toEqual(["RUNNING", "WAITING", "signal wake-up"]);
    const sent = await run.signal("wake-up", "parked-and-back");
    expect(sent.delivery).toBe("delivered"); // parked here: loaded again, then signalled here
    expect(await run.result(10_000)).toBe("parked-and-back");
    expect((await parkedRow(run.id)).parked).toBe(false);
    const admin = createClient(AdminService, parking.address); // GetServerStatus counts them
    const s = await admin.getServerStatus({});
    expect([s.runsParked >= 1n, s.runsUnparked >= 1n]).toEqual([true, true]);
    admin.close();
  });

  it("a parked sleep is loaded before its time and ends on time; a parked run's deadline still fails it", async () => {
    const sleeper = await pc.submit(stamp.send("parked-sleep").sleep(4000).continueWith(stamp));
    await until("the sleeper parked", async () => (await parkedRow(sleeper.id)).parked, 5000);
    const wakeAt = (await parkedRow(sleeper.id)).wake_at!.getTime();
    expect(await sleeper.result(15_000)).toBe("parked-sleep");
    expect(ranAt.get("parked-sleep")!).toBeGreaterThanOrEqual(wakeAt - 5);
    const timed = await pc.submit(waitForSignal("never-comes"), { runTimeoutMs: 2500 });
    await until("the timed run parked", async () => (await parkedRow(timed.id)).parked, 5000);
    expect((await parkedRow(timed.id)).wake_at).not.toBeNull(); // its deadline
    const err = await timed.result(15_000).catch((e) => e);
    expect((err as RunFailedError).error.type).toBe("pipewright.Timeout");
  });

  it("a parked run waiting for an event is brought back by the event's publication", async () => {
    const run = await pc.submit(waitForEvent("parked.event").continueWith(stamp));
    await until("the run parked", async () => (await parkedRow(run.id)).parked, 5000);
    expect((await pc.events.publish("parked.event", "published-to-parked", { eventId: "pe-1" })).runs).toEqual([]); // no trigger: only the waiting run hears of it
    expect(await run.result(10_000)).toBe("published-to-parked");
  });

  it("a parked run is cancelled at once, and a WaitRun on it returns when it ends", async () => {
    const run = await pc.submit(sleep(3600_000).continueWith(stamp.send("never-after-parked-sleep")));
    await until("the run parked", async () => (await parkedRow(run.id)).parked, 5000);
    const waiting = run.wait(10_000);
    await run.cancel("parked, then cancelled");
    expect((await waiting).state).toBe(RunState.CANCELLED);
    expect(ranAt.has("never-after-parked-sleep")).toBe(false);
  });
});

describe("waits through a server process killed with SIGKILL", () => {
  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers) if (s.child.exitCode === null) s.child.kill("SIGKILL");
    await db?.drop();
  });

  it("a sleep survives the kill and ends on time; a signal wait reloaded elsewhere is resumed through another process", async () => {
    db = await createTestDatabase();
    const [portA, portB] = [await freePort(), await freePort()];
    const flags = ["--process-timeout-ms", "1500"];
    const a = await spawnServer(["--address", `127.0.0.1:${portA}`, ...flags], { DATABASE_URL: db.url });
    servers.push(a);
    const c = new PipewrightClient(a.address);
    const w = new Worker({ address: a.address, tasks: [stamp], log: () => {}, reconnectDelayMs: { initial: 50, max: 300 } });
    try {
      await w.start();
      const sleeper = await c.submit(stamp.send("kill-before").sleep(2500).continueWith(stamp)); // the second stamp gets "kill-before" again
      const waiter = await c.submit(waitForSignal("resume-me").continueWith(stamp));
      const waiting = async (id: string) => {
        const run = (await c.rpc.getRun({ runId: id, view: RunView.FULL })).run!;
        return run.steps.some((s) => s.kind === StepKind.WAIT && s.state === StepState.WAITING);
      };
      // Both waits committed before the kill: the restarted processes must arm them from the log alone.
      await until("both waits begun", async () => (await waiting(sleeper.id)) && (await waiting(waiter.id)), 5000);
      const wakesAt = ranAt.get("kill-before")! + 2500;
      a.child.kill("SIGKILL");
      await a.exited;
      const a2 = await spawnServer(["--address", `127.0.0.1:${portA}`, ...flags], { DATABASE_URL: db.url });
      servers.push(a2);
      const b = await spawnServer(["--address", `127.0.0.1:${portB}`, ...flags], { DATABASE_URL: db.url });
      servers.push(b);
      const viaA = new PipewrightClient(a2.address);
      const viaB = new PipewrightClient(b.address);
      try {
        const slept = await resilient("the sleeper's result", () => viaA.rpc.waitRun({ runId: sleeper.id, timeout: { seconds: 20n, nanos: 0 } }), 30_000);
        expect(slept.run!.state).toBe(RunState.SUCCEEDED);
        expect(ranAt.get("kill-before")!).toBeGreaterThanOrEqual(wakesAt - 5); // not early (clock reads differ by a few ms at most)
        // The waiter was reloaded by one of the two processes; the signal goes through either.
        const sent = (await resilient("the signal", () => viaB.run(waiter.id).signal("resume-me", "after-the-kill"), 20_000)) as { run: { state: RunState } };
        expect([RunState.RUNNING, RunState.SUCCEEDED]).toContain(sent.run.state); // answered once its owner applied it
        expect(await resilient("the waiter's result", () => viaB.run(waiter.id).result(10_000), 20_000)).toBe("after-the-kill");
      } finally {
        viaA.close();
        viaB.close();
      }
    } finally {
      c.close();
      await Promise.race([w.stop(), new Promise((r) => setTimeout(r, 2000))]);
    }
  });
});

function nest(depth: number): ReturnType<typeof encodeValue>[] {
  let v = encodeValue(1);
  for (let i = 0; i < depth; i++) v = { kind: { case: "list", value: { items: [v] } } } as never;
  return [v];
}
