// What a person watching a run sees: every step state WatchRun promises
// (the first QUEUED ones, RUNNING, WAITING), the progress a task reports, a
// word when no connected worker serves a task, and the workers themselves.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, RunView, StepState, WorkerSessionState, type RunEvent, type StepStatus } from "@pipewright/protocol";
import { createClient, decodeValue } from "@pipewright/protocol";
import { inParallel, taskRef } from "@pipewright/client";
import { currentTask, task } from "@pipewright/worker";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

const gates = new Map<string, () => void>();
const opened = (name: string) => new Promise<void>((resolve) => gates.set(name, resolve));
/** Reports progress 1 of 3, then waits until the test opens its gate, then reports 3 of 3. */
const slow = task("slow_progress", async (name: string) => {
  const gate = opened(name);
  currentTask().heartbeat({ done: 1, total: 3 });
  await gate;
  currentTask().heartbeat({ done: 3, total: 3 });
  return name;
});
const quick = task("quick", (x: number) => x + 1);
/** Fails its first two tries, then returns its argument. */
const flakyTwice = task("flaky_twice", (x: number) => {
  if (currentTask().retryNumber <= 2) throw new Error(`try ${currentTask().retryNumber}`);
  return x;
});

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ heartbeatIntervalMs: 200 });
  await ts.worker({ tasks: [slow, quick, flakyTwice], slots: 4, name: "watch-test-worker" });
});
afterAll(async () => {
  for (const open of gates.values()) open();
  await ts?.stop();
});

/** Collects a run's WatchRun events until the run ends. */
function watch(runId: string): { events: RunEvent[]; done: Promise<void> } {
  const events: RunEvent[] = [];
  const done = (async () => {
    for await (const { event } of ts.client().rpc.watchRun({ runId })) events.push(event!);
  })();
  return { events, done };
}

const stepEvents = (events: RunEvent[]) => events.flatMap((e) => (e.kind.case === "step" ? [e.kind.value] : []));
const statesOf = (steps: StepStatus[], path: string) => steps.filter((s) => s.path === path).map((s) => StepState[s.state]);

describe("watching a run", () => {
  it("WatchRun streams the first QUEUED states, RUNNING, WAITING, progress, and the end", async () => {
    const run = await ts
      .client()
      .submit(inParallel([slow.send("a"), quick.send(1)]).continueWith(taskRef<[unknown[]], number>("quick_list")), { name: "watched" });
    const w = watch(run.id);
    await until("slow_progress reported progress", () => stepEvents(w.events).some((s) => s.task === "slow_progress" && s.progress));
    const steps = stepEvents(w.events);
    expect(statesOf(steps, "steps[0]")).toContain("WAITING"); // the group
    expect(statesOf(steps, "steps[0].group.branches[0].steps[0]")).toEqual(expect.arrayContaining(["QUEUED", "RUNNING"]));
    const progress = steps.find((s) => s.progress)!.progress!;
    expect(decodeValue(progress)).toEqual({ done: 1, total: 3 });
    // GetRun shows the running task's progress too.
    const full = await ts.client().rpc.getRun({ runId: run.id, view: RunView.FULL });
    const running = full.run!.steps.find((s) => s.task === "slow_progress")!;
    expect(StepState[running.state]).toBe("RUNNING");
    expect(decodeValue(running.progress)).toEqual({ done: 1, total: 3 });
    gates.get("a")!();
    await ts.worker({ tasks: [task("quick_list", (xs: unknown[]) => xs.length)], slots: 1 });
    await w.done;
    const last = w.events.at(-1)!;
    expect(last.kind.case).toBe("run");
    expect(statesOf(stepEvents(w.events), "steps[1]")).toContain("SUCCEEDED");
  });

  it("a watch's step events never go back: a step's attempts never decrease, and a finished attempt is not shown running again", async () => {
    // Retries (a failed attempt queued again, then handed out at once) and watches started while
    // steps run: the orders where a live "running" could overtake the "queued" it follows, or a
    // snapshot of running steps could come after the history finished one.
    const retrying = flakyTwice.withOptions({ retry: { maxAttempts: 3, initialDelayMs: 0 } });
    const runs = await Promise.all(Array.from({ length: 30 }, (_, i) => ts.client().submit(retrying.send(i).continueWith(quick))));
    const watches = await Promise.all(
      runs.map(async (r, i) => {
        await new Promise((resolve) => setTimeout(resolve, i % 5)); // some attach mid-run
        return watch(r.id);
      }),
    );
    await Promise.all(watches.map((w) => w.done));
    const finished = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
    for (const w of watches) {
      const byPath = new Map<string, { attempts: number; state: string }>();
      for (const s of stepEvents(w.events)) {
        const before = byPath.get(s.path);
        const now = { attempts: s.attempts, state: StepState[s.state] };
        if (before) {
          expect(now.attempts, `${s.path}: ${JSON.stringify(before)} then ${JSON.stringify(now)}`).toBeGreaterThanOrEqual(before.attempts);
          if (finished.has(before.state) && now.attempts === before.attempts) expect(now.state, `${s.path} went back`).toBe(before.state);
        }
        byPath.set(s.path, now);
      }
      expect(byPath.get("steps[0]")).toEqual({ attempts: 3, state: "SUCCEEDED" });
    }
  });

  it("a task no connected worker serves: GetRun says so, counts no attempt and shows no start; a worker arriving runs it", async () => {
    const lonely = taskRef<[number], number>("nobody_serves_this");
    const run = await ts.client().submit(lonely.send(1));
    const full = await ts.client().rpc.getRun({ runId: run.id, view: RunView.FULL });
    const step = full.run!.steps[0];
    expect(StepState[step.state]).toBe("QUEUED");
    expect(step.waitingReason).toBe('no connected worker serves task "nobody_serves_this"');
    expect(step.attempts).toBe(0);
    expect(step.startTime).toBeUndefined();
    await ts.worker({ tasks: [task("nobody_serves_this", (x: number) => x * 10)], slots: 1 });
    expect(await run.result()).toBe(10);
  });

  it("each process writes what its workers serve with its heartbeat, and keeps beating", async () => {
    await until(
      "the heartbeat row lists the worker's tasks",
      async () => {
        const [row] = await ts.server.sql<{ serves: [string, string][]; silence_ms: number }[]>`
        select serves, extract(epoch from now() - heartbeat_at) * 1000 as silence_ms from server_processes where id = ${ts.server.processId}::uuid`;
        return row.serves.some(([t, q]) => t === "quick" && q === "") && row.silence_ms < 3000;
      },
      8000,
    );
  });

  it("AdminService.ListWorkers lists the connected workers with what they serve and hold", async () => {
    const admin = createClient(AdminService, ts.address);
    try {
      const { workers } = await admin.listWorkers({});
      const w = workers.find((x) => x.name === "watch-test-worker")!;
      expect(w).toBeDefined();
      expect(w.taskNames).toEqual(["flaky_twice", "quick", "slow_progress"]);
      expect(w.queues).toEqual([""]);
      expect(w.slots).toBe(4);
      expect(WorkerSessionState[w.state]).toBe("ACTIVE");
      expect(w.processId).toBe(ts.server.processId);
      expect(Number(w.connectTime!.seconds) * 1000).toBeLessThanOrEqual(Date.now());
      // What it holds now: a running attempt, with its run, step, attempt, task and start.
      const run = await ts.client().submit(slow.send("listed"));
      await until("the worker lists the attempt it holds", async () =>
        (await admin.listWorkers({})).workers.some((x) => x.attempts.some((a) => a.runId === run.id)),
      );
      const held = (await admin.listWorkers({})).workers.find((x) => x.name === "watch-test-worker")!.attempts.find((a) => a.runId === run.id)!;
      expect(held).toMatchObject({ step: 1, attempt: 1, task: "slow_progress" }); // step 0 is the pipeline itself
      expect(Number(held.startTime!.seconds) * 1000).toBeLessThanOrEqual(Date.now());
      gates.get("listed")!();
      await run.wait();
      await until("the finished attempt is no longer listed", async () =>
        (await admin.listWorkers({})).workers.every((x) => !x.attempts.some((a) => a.runId === run.id)),
      );
    } finally {
      admin.close();
    }
  });
});
