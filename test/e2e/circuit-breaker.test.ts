// Circuit breaker per task name: after `threshold` failures in a row the
// circuit opens and the task's attempts wait in the queue (no runs, no retries
// used up); after the cool-down one probe goes out; its success closes the
// circuit and everything waiting runs; its failure reopens it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, CircuitState } from "../../proto/gen/pipewright/v1/admin_service_pb.js";
import { RunState, StepState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";
import * as t from "../support/test-tasks.js";
import { PipewrightClient } from "../../client/client.js";
import { task } from "../../worker-sdk/task.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ circuitBreakerThreshold: 3, circuitBreakerCooldownMs: 500 });
  await ts.worker({ tasks: t.testTasks, slots: 8 });
});
afterAll(() => ts?.stop());

describe("circuit breaker", () => {
  it("opens after consecutive failures, holds the task's attempts without using retries, probes, and closes", async () => {
    const admin = createClient(AdminService, ts.address);
    const circuit = async () => (await admin.listCircuitBreakers({})).breakers.find((b) => b.task === "downstream");
    const client = ts.client();
    t.downstreamService.healthy = false;
    t.downstreamService.calls = 0;

    const first = await Promise.all([1, 2, 3].map((i) => client.submit(t.downstream.send(i))));
    for (const r of first) expect((await r.wait()).state).toBe(RunState.FAILED);
    const open = await circuit();
    expect(open?.state).toBe(CircuitState.OPEN);
    expect(open?.consecutiveFailures).toBe(3);
    expect(open?.probeTime).toBeDefined();

    // While open, new attempts wait: nothing reaches the downstream, nothing fails.
    const retrying = t.downstream.withOptions({ retry: { maxAttempts: 3, initialDelayMs: 10 } });
    const waiting = await Promise.all([10, 20, 30, 40].map((i) => client.submit(retrying.send(i))));
    await new Promise((r) => setTimeout(r, 200));
    expect(t.downstreamService.calls).toBe(3);
    for (const r of waiting) expect(StepState[(await r.get(true)).steps[0].state]).toBe("QUEUED");

    // Cool-down over, still down: exactly one probe goes out, fails, and the circuit reopens.
    await until("a probe", () => t.downstreamService.calls === 4);
    await until("reopened", async () => (await circuit())?.state === CircuitState.OPEN);
    await new Promise((r) => setTimeout(r, 100));
    expect(t.downstreamService.calls).toBe(4);

    // Back up: the next probe succeeds, the circuit closes, everything waiting runs.
    t.downstreamService.healthy = true;
    const results = await Promise.all(waiting.map((r) => r.result()));
    expect(results).toEqual([10, 20, 30, 40]);
    expect((await circuit())?.state).toBe(CircuitState.CLOSED);
    const attempts = await Promise.all(waiting.map(async (r) => (await r.get(true)).steps[0].attempts));
    expect(attempts.sort()).toEqual([1, 1, 1, 2]); // only the failed probe's run used a retry
    expect(t.downstreamService.calls).toBe(4 + 4);

    const status = await admin.getServerStatus({});
    expect(status.workers).toBeGreaterThanOrEqual(1);
    expect(status.processId).toBe(ts.server.processId);
    admin.close();
  });

  it("each namespace has its own breaker per task name: one namespace's failures hold nothing of another's", async () => {
    // The same task name in two namespaces: team-a's always fails, team-b's works.
    await ts.worker({
      namespace: "team-a",
      tasks: [
        task("shared_name", (): number => {
          throw new Error("down for team-a");
        }),
      ],
    });
    await ts.worker({ namespace: "team-b", tasks: [task("shared_name", (): number => 7)] });
    const [a, b] = [new PipewrightClient(ts.address, { namespace: "team-a" }), new PipewrightClient(ts.address, { namespace: "team-b" })];
    const admin = createClient(AdminService, ts.address);
    const ref = task("shared_name", (): number => 0);
    try {
      for (const r of await Promise.all([1, 2, 3].map(() => a.submit(ref.send())))) expect((await r.wait()).state).toBe(RunState.FAILED);
      const breakers = (await admin.listCircuitBreakers({})).breakers.filter((x) => x.task === "shared_name");
      expect(breakers.map((x) => [x.namespace, CircuitState[x.state]])).toEqual([["team-a", "OPEN"]]);
      // team-b's attempts of the same task name go out at once and succeed.
      expect(await Promise.all([1, 2, 3, 4].map(() => b.submitAndWait(ref.send())))).toEqual([7, 7, 7, 7]);
      // team-a's wait in the queue.
      const held = await a.submit(ref.send());
      await new Promise((r) => setTimeout(r, 100));
      expect(StepState[(await held.get(true)).steps[0].state]).toBe("QUEUED");
      await held.cancel();
    } finally {
      a.close();
      b.close();
      admin.close();
    }
  });
});
