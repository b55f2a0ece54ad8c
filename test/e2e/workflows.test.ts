// DAG workflows, canvas and jobs against the real server: what only a real
// server shows (node states, attempts, timing, errors, node ids), bad DAGs
// refused, jobs' name/id/status, and listing runs by state and name.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { job } from "../../client/job.js";
import { NodeRef, Workflow } from "../../client/workflow.js";
import { RunState, StepKind, StepState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { runJobLocally } from "../../worker-sdk/local-runner.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: t.testTasks, slots: 8 });
});
afterAll(() => ts?.stop());

describe("DAG monitoring", () => {
  it("reading a run gives every node's state, attempts, timing, error and id", async () => {
    const wf = new Workflow("monitored");
    const bad = wf.add(t.flaky.withOptions({ retry: { maxAttempts: 2, initialDelayMs: 1 } }), { id: "flaky-then-fails", args: [5] });
    wf.add(t.echo, { id: "downstream-of-bad", dependsOn: [bad] });
    const good = wf.add(ex.multiply, { id: "good", args: [2, 21] });
    wf.add(t.echo, { id: "downstream-of-good", dependsOn: [good], parentResults: "always" });
    const run = await ts.client().submit(wf.toPipeline(), { name: "dag-monitoring" });
    const done = await run.wait();
    expect(done.state).toBe(RunState.FAILED);
    const steps = (await run.get(true)).steps;
    const dag = steps.find((s) => s.kind === StepKind.DAG)!;
    expect(StepState[dag.state]).toBe("FAILED");
    const nodes = Object.fromEntries(steps.filter((s) => s.kind === StepKind.DAG_NODE).map((s) => [s.dagNodeId, s]));
    expect(Object.fromEntries(Object.entries(nodes).map(([id, s]) => [id, [StepState[s.state], s.attempts]]))).toEqual({
      "flaky-then-fails": ["FAILED", 2],
      "downstream-of-bad": ["SKIPPED", 0],
      good: ["SUCCEEDED", 1],
      "downstream-of-good": ["SUCCEEDED", 1],
    });
    // Each node names what it waits for: the graph can be drawn from the run's status alone.
    expect(Object.fromEntries(Object.entries(nodes).map(([id, s]) => [id, s.dagDependsOn]))).toEqual({
      "flaky-then-fails": [],
      "downstream-of-bad": ["flaky-then-fails"],
      good: [],
      "downstream-of-good": ["good"],
    });
    expect(nodes["flaky-then-fails"].error?.type).toBe("Flaky");
    expect(nodes.good.startTime).toBeDefined();
    expect(nodes.good.finishTime).toBeDefined();
    expect(nodes["downstream-of-bad"].startTime).toBeUndefined();
    expect(nodes.good.parentStepId).toBe(dag.stepId);
  });

  it("a cancelled DAG shows running nodes CANCELLED and the rest never started", async () => {
    const wf = new Workflow();
    const slow = wf.add(t.gate, { id: "slow", args: ["dag-gate"] });
    wf.add(t.echo, { id: "after", dependsOn: [slow] });
    const run = await ts.client().submit(wf.toPipeline());
    for (let i = 0; i < 200 && !t.journal.includes("start dag-gate"); i++) await new Promise((r) => setTimeout(r, 20));
    await run.cancel();
    expect((await run.wait()).state).toBe(RunState.CANCELLED);
    const nodes = (await run.get(true)).steps.filter((s) => s.kind === StepKind.DAG_NODE);
    expect(nodes.map((s) => [s.dagNodeId, StepState[s.state]])).toEqual([
      ["slow", "CANCELLED"],
      ["after", "CANCELLED"],
    ]);
    t.resetGates();
  });
});

describe("invalid DAGs", () => {
  const expectInvalid = async (wf: Workflow, ...parts: string[]) => {
    const err = await ts
      .client()
      .submit(wf.toPipeline())
      .catch((e) => e);
    const details = err.details ?? err.message;
    for (const p of parts) expect(details).toContain(p);
  };

  it("a cycle, an unknown dependency and a duplicate id are refused, naming the nodes", async () => {
    const cyclic = new Workflow();
    cyclic.add(ex.add, { id: "a", args: [1, 1], dependsOn: [new NodeRef("c")] });
    cyclic.add(ex.add, { id: "b", args: [1, 1], dependsOn: [new NodeRef("a")] });
    cyclic.add(ex.add, { id: "c", args: [1, 1], dependsOn: [new NodeRef("b")] });
    await expectInvalid(cyclic, 'dependency cycle: "a" -> "c" -> "b" -> "a"');

    const unknown = new Workflow();
    unknown.add(ex.add, { id: "a", args: [1, 1], dependsOn: [new NodeRef("ghost")] });
    await expectInvalid(unknown, 'steps[0].dag.nodes[0].depends_on[0]: unknown node "ghost"');

    // A duplicate id, and a refused submission writes nothing: checked through the raw API.
    const dup = new Workflow();
    dup.add(ex.add, { id: "same", args: [1, 1] });
    const proto = dup.toPipeline().unchecked();
    const dag = proto.steps[0].kind.value as { nodes: { id: string }[] };
    dag.nodes.push({ ...dag.nodes[0] } as never);
    const err = await ts
      .client()
      .rpc.submitRun({ pipeline: proto })
      .catch((e) => e);
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain('pipeline.steps[0].dag.nodes[1].id: duplicate id "same", first used by nodes[0]');
  });
});

describe("jobs", () => {
  const arith = job("arith_job", (x: number, y: number) => {
    const product = ex.multiply.call(x, y);
    const total = ex.add.call(product, y);
    return [product, total];
  });

  it("have a name, an id and a status, on the server", async () => {
    const j = arith(5, 6);
    expect([j.name, j.status]).toEqual(["arith_job", "pending"]);
    expect(j.id).toMatch(/^[0-9a-f-]{36}$/);
    const client = ts.client();
    await j.submit(client);
    expect(j.status).toBe("running");
    expect(await j.wait()).toEqual([30, 36]);
    expect(j.status).toBe("completed");
    const run = await client.run(j.runId!).get(true);
    expect(run.name).toBe("arith_job");
    expect(run.steps.filter((s) => s.kind === StepKind.DAG_NODE).map((s) => s.dagNodeId)).toEqual(["multiply#1", "add#2"]);
    // The job id is the request id: submitting the same job again gives the same run.
    const again = await client.submit(j.pipeline, { requestId: j.id, name: j.name });
    expect(again.id).toBe(j.runId);
  });

  it("run locally with the job test runner, and fail with a status", async () => {
    const j = arith(2, 3);
    expect(await runJobLocally(j, { tasks: t.testTasks })).toEqual([6, 9]);
    expect(j.status).toBe("completed");
    const failing = job("failing_job", () => [ex.fail.call("nope")])();
    await expect(runJobLocally(failing, { tasks: t.testTasks })).rejects.toThrow();
    expect(failing.status).toBe("failed");
    expect(() => ex.multiply.call(1, 2)).toThrow(/inside a job\(\) builder/);
  });
});

describe("listing runs", () => {
  it("filters by state and name, newest first, a page at a time", async () => {
    const client = ts.client();
    const name = `list-${Date.now()}`;
    const ok = await Promise.all([1, 2, 3].map((i) => client.submit(ex.multiply.send(i, 1), { name })));
    for (const r of ok) await r.result();
    const bad = await client.submit(ex.fail.send("x"), { name });
    await bad.wait();
    const all = await client.rpc.listRuns({ name, pageSize: 2 });
    expect(all.runs).toHaveLength(2);
    expect(all.runs[0].id).toBe(bad.id); // newest first
    const next = await client.rpc.listRuns({ name, pageSize: 2, pageToken: all.nextPageToken });
    expect(next.runs).toHaveLength(2);
    expect(next.nextPageToken).toBe("");
    expect(new Set([...all.runs, ...next.runs].map((r) => r.id))).toEqual(new Set([...ok.map((r) => r.id), bad.id]));
    const failed = await client.rpc.listRuns({ name, states: [RunState.FAILED] });
    expect(failed.runs.map((r) => r.id)).toEqual([bad.id]);
    const bogus = await client.rpc.listRuns({ pageToken: "not-a-token" }).catch((e) => e);
    expect(grpc.status[bogus.code]).toBe("INVALID_ARGUMENT");
  });
});
