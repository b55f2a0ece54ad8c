// The pipeline model executed by the real server (real PostgreSQL, real
// workers over gRPC): every semantic case, plus what only a real server shows
// (concurrency, routing, step states, attempts, timing of retries).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inParallel } from "../../client/pipeline-builder.js";
import { StepState, RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import * as ex from "../../examples/tasks.js";
import { semanticCases } from "../support/semantic-cases.js";
import { expectOutcome } from "../support/outcome-matchers.js";
import { outcomeOf } from "../support/run-outcome.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: t.testTasks, slots: 16 });
});
afterAll(() => ts?.stop());

const stepState = (s: StepState) => StepState[s];

describe("semantics on the real server", () => {
  it("every semantic case gives the required outcome", async () => {
    const client = ts.client();
    const runs = await Promise.all(semanticCases.map((c) => client.submit(c.pipeline(), { name: c.name })));
    const finished = await Promise.all(runs.map((r) => r.wait(60_000)));
    finished.forEach((run, i) => expectOutcome(outcomeOf(run), semanticCases[i].expect, semanticCases[i].name));
  });

  it("max_parallelism is a semaphore: never more at once, the next branch starts as soon as one finishes", async () => {
    t.concurrency.reset();
    const client = ts.client();
    // Branch 0 is slow; with a limit of 2, branches 2..5 must run beside it, one after another.
    const durations = [400, 20, 20, 20, 20, 20];
    const run = await client.submit(
      inParallel(
        durations.map((ms, i) => t.probe.send(i, ms)),
        { maxParallelism: 2 },
      ),
    );
    expect(await run.result()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(t.concurrency.max).toBe(2);
    const steps = (await run.get(true)).steps.filter((s) => s.task === "probe");
    const ms = (ts: { seconds: bigint; nanos: number } | undefined) => Number(ts!.seconds) * 1000 + ts!.nanos / 1e6;
    const slowEnd = ms(steps[0].finishTime);
    for (const s of steps.slice(2)) expect(ms(s.finishTime)).toBeLessThan(slowEnd);
  });

  it("steps show their states: skipped while an error flows, failed, succeeded", async () => {
    const client = ts.client();
    const run = await client.submit(ex.fail.send("a").continueWith(ex.add, 1).exceptionally(ex.handleError, 5).finallyDo(ex.cleanup));
    expect(await run.result()).toBe(5);
    const steps = (await run.get(true)).steps;
    expect(steps.map((s) => [s.path, stepState(s.state)])).toEqual([
      ["steps[0]", "FAILED"],
      ["steps[1]", "SKIPPED"],
      ["steps[2]", "SUCCEEDED"],
      ["finally", "SUCCEEDED"],
    ]);
    expect(steps[0].error?.type).toBe("ValueError");
  });

  it("retries: attempts are counted and backoff delays are waited", async () => {
    const client = ts.client();
    const run = await client.submit(t.flaky.withOptions({ retry: { maxAttempts: 3, initialDelayMs: 100, backoffFactor: 2 } }).send(3));
    expect(await run.result()).toBe(3);
    const [step] = (await run.get(true)).steps;
    expect(step.attempts).toBe(3);
    // Delays of 100 ms then 200 ms separate the three tries.
    const ms = (x: { seconds: bigint; nanos: number } | undefined) => Number(x!.seconds) * 1000 + x!.nanos / 1e6;
    expect(ms(step.finishTime) - ms(step.startTime)).toBeGreaterThanOrEqual(300);

    const terminal = await client.submit(t.failWith.withOptions({ retry: { maxAttempts: 5, initialDelayMs: 1 } }).send("X", "final", true));
    const done = await terminal.wait();
    expect(done.state).toBe(RunState.FAILED);
    expect((await terminal.get(true)).steps[0].attempts).toBe(1);
  });

  it("a queue routes a task only to workers serving it; display names show in the run", async () => {
    const gpu = await ts.worker({ tasks: t.testTasks, queues: ["gpu"], slots: 2 });
    const client = ts.client();
    const before = gpu.completed;
    const onGpu = ex.multiply.withOptions({ queue: "gpu", displayName: "multiply on the GPU" });
    const run = await client.submit(onGpu.send(6, 7).continueWith(ex.add, 0));
    expect(await run.result()).toBe(42);
    expect(gpu.completed - before).toBe(1); // only the gpu step ran there
    const steps = (await run.get(true)).steps;
    expect(steps[0].displayName).toBe("multiply on the GPU");
    expect(steps[1].displayName).toBe("add");
  });

  it("num_stages shows its stages as group steps and gives the same result", async () => {
    const client = ts.client();
    const run = await client.submit(
      inParallel(
        Array.from({ length: 7 }, (_, i) => ex.multiply.send(i, 1)),
        { numStages: 3 },
      ).continueWith(ex.sum),
    );
    expect(await run.result()).toBe(21);
    const stages = (await run.get(true)).steps.filter((s) => s.path.includes(".stages["));
    expect(stages.map((s) => [s.path, stepState(s.state)])).toEqual([
      ["steps[0].group.stages[0]", "SUCCEEDED"],
      ["steps[0].group.stages[1]", "SUCCEEDED"],
      ["steps[0].group.stages[2]", "SUCCEEDED"],
    ]);
  });
});

describe("limits", () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startTestServer({ maxDepth: 5, maxTasksPerRun: 20 });
    await small.worker({ tasks: t.testTasks, slots: 4 });
  });
  afterAll(() => small?.stop());

  it("child pipelines nested deeper than the limit fail the task with a clear error", async () => {
    const run = await small.client().submit(t.deep.send(10));
    const out = outcomeOf(await run.wait());
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.error.type).toBe("pipewright.LimitExceeded");
      expect(out.error.message).toBe("child pipeline nesting would exceed the limit of 5 levels");
    }
    expect(await small.client().submitAndWait(t.deep.send(5))).toBe(5);
  });

  it("a run that would exceed the task limit fails; a submission over it is refused", async () => {
    const out = outcomeOf(await (await small.client().submit(t.fanOut.send(25))).wait());
    expect(!out.ok && out.error.type).toBe("pipewright.LimitExceeded");
    const err = await small
      .client()
      .submit(inParallel(Array.from({ length: 21 }, (_, i) => t.echo.send(i))))
      .catch((e) => e);
    expect(err.details).toContain("over this server's limit of 20 per run");
  });
});
