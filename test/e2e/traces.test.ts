// OpenTelemetry traces across the hops of a run: client, server, workers all in
// this process, recorded by one tracer provider with an in-memory exporter.
// One trace per submit: client submit span -> server submit span -> run span
// -> attempt spans -> worker execution spans, every parent in the trace.
// No propagator is registered: the client and worker SDK fall back to W3C
// Trace Context themselves, as they must for an application that set none.

import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { RunService } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { inParallel } from "../../client/pipeline-builder.js";
import { task } from "../../worker-sdk/task.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);

const add = task("tr.add", (a: number, b: number) => a + b);
const sum = task("tr.sum", (xs: number[]) => xs.reduce((a, b) => a + b, 0));
let flakyCalls = 0;
const flaky = task("tr.flaky", (x: number) => {
  if (++flakyCalls === 1) throw new Error("first try fails");
  return x;
});
const spawn = task("tr.spawn", (n: number) => add.send(n, 1).continueWith(add, 10));
let gateRuns = 0;
let openGate: () => void = () => {};
const gateOpen = new Promise<void>((resolve) => (openGate = resolve));
const gate = task("tr.gate", async () => {
  gateRuns++;
  await gateOpen;
  return 1;
});

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [add, sum, flaky, spawn, gate], slots: 4 });
});
afterAll(async () => {
  await ts?.stop();
  trace.disable();
});
beforeEach(() => exporter.reset());

const id = (s: ReadableSpan) => s.spanContext().spanId;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** The finished spans of one trace, once the run span has ended (it ends after the run's commit). */
async function traceOfRun(runId: string): Promise<ReadableSpan[]> {
  let run: ReadableSpan | undefined;
  await until(
    "the run span ended",
    () => !!(run = exporter.getFinishedSpans().find((s) => s.name === "pipewright run" && s.attributes["pipewright.run.id"] === runId)),
  );
  const traceId = run!.spanContext().traceId;
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

/** Every span's parent is in the trace, up to one root; returns the root. */
function expectConnected(spans: ReadableSpan[]): ReadableSpan {
  const ids = new Set(spans.map(id));
  const roots = spans.filter((s) => !parentOf(s));
  expect(roots.map((s) => s.name)).toEqual(["pipewright submit"]);
  for (const s of spans) if (parentOf(s)) expect(ids.has(parentOf(s)!), `parent of ${s.name} is in the trace`).toBe(true);
  return roots[0];
}

const named = (spans: ReadableSpan[], prefix: string) => spans.filter((s) => s.name.startsWith(prefix));
const childrenOf = (spans: ReadableSpan[], parent: ReadableSpan) => spans.filter((s) => parentOf(s) === id(parent));

describe("one trace per run, client to worker", () => {
  it("a group of two tasks then a continuation: client -> server submit -> run -> attempts -> worker spans", async () => {
    const client = ts.client();
    const run = await client.submit(inParallel([add.send(1, 2), add.send(3, 4)]).continueWith(sum));
    expect(await run.result()).toBe(10);
    const spans = await traceOfRun(run.id);
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);

    const root = expectConnected(spans);
    expect(root.kind).toBe(SpanKind.CLIENT);
    expect(root.attributes["pipewright.run.id"]).toBe(run.id);
    const [submit] = childrenOf(spans, root);
    expect(submit.name).toBe("pipewright.v1.RunService/SubmitRun");
    expect(submit.kind).toBe(SpanKind.SERVER);
    const [runSpan] = childrenOf(spans, submit);
    expect(runSpan.name).toBe("pipewright run");
    expect(runSpan.attributes).toMatchObject({ "pipewright.run.id": run.id, "pipewright.run.state": "SUCCEEDED" });

    const attempts = childrenOf(spans, runSpan);
    expect(attempts.map((s) => s.name).sort()).toEqual(["pipewright attempt tr.add", "pipewright attempt tr.add", "pipewright attempt tr.sum"]);
    for (const a of attempts) {
      expect(a.kind).toBe(SpanKind.CLIENT);
      expect(a.attributes).toMatchObject({ "pipewright.run.id": run.id, "pipewright.attempt": 1, "pipewright.retry_number": 1, "pipewright.outcome": "value" });
      expect(a.events.map((e) => e.name)).toEqual(["queued", "assigned"]);
      const workers = childrenOf(spans, a);
      expect(workers.map((w) => w.name)).toEqual([a.name.replace("attempt", "execute")]);
      expect(workers[0].kind).toBe(SpanKind.SERVER);
      expect(workers[0].attributes).toMatchObject({
        "pipewright.task.name": a.attributes["pipewright.task.name"],
        "pipewright.run.id": run.id,
        "pipewright.step": a.attributes["pipewright.step"],
        "pipewright.attempt": 1,
      });
    }
    // The continuation's attempt was queued once the group had finished (span start times
    // have millisecond resolution, end times finer: 1 ms of slack).
    const sumAttempt = attempts.find((a) => a.name.endsWith("tr.sum"))!;
    for (const a of attempts.filter((x) => x !== sumAttempt)) expect(hr(sumAttempt.startTime)).toBeGreaterThanOrEqual(hr(a.endTime) - 1e6);
    expect(spans).toHaveLength(3 + 3 * 2);
  });

  it("the traceparent stored with the run is the run span's", async () => {
    const client = ts.client();
    const run = await client.submit(add.send(1, 1));
    await run.result();
    const spans = await traceOfRun(run.id);
    const runSpan = spans.find((s) => s.name === "pipewright run")!;
    const [row] = await ts.server.sql<
      { traceparent: string; tracestate: string | null }[]
    >`select traceparent, tracestate from runs where uid = ${run.id}::uuid`;
    const sc = runSpan.spanContext();
    expect(row.traceparent).toBe(`00-${sc.traceId}-${sc.spanId}-01`);
    expect(row.tracestate).toBeNull();
  });

  it("a retried task gives two attempt spans and two worker spans, the failed ones in ERROR", async () => {
    flakyCalls = 0;
    const client = ts.client();
    const run = await client.submit(flaky.withOptions({ retry: { maxAttempts: 2, initialDelayMs: 10 } }).send(7));
    expect(await run.result()).toBe(7);
    const spans = await traceOfRun(run.id);
    expectConnected(spans);
    const attempts = named(spans, "pipewright attempt tr.flaky").sort((a, b) => hr(a.startTime) - hr(b.startTime));
    expect(
      attempts.map((a) => [a.attributes["pipewright.retry_number"], a.attributes["pipewright.attempt"], a.attributes["pipewright.outcome"], a.status.code]),
    ).toEqual([
      [1, 1, "error", SpanStatusCode.ERROR],
      [2, 2, "value", SpanStatusCode.UNSET],
    ]);
    const workers = attempts.map((a) => childrenOf(spans, a));
    expect(workers.map((w) => w.length)).toEqual([1, 1]);
    expect(workers[0][0].status.code).toBe(SpanStatusCode.ERROR);
    expect(workers[0][0].events.map((e) => [e.name, e.attributes?.["exception.message"]])).toEqual([["exception", "first try fails"]]);
    expect(workers[1][0].status.code).toBe(SpanStatusCode.UNSET);
    expect(workers.map((w) => w[0].attributes["pipewright.attempt"])).toEqual([1, 2]);
  });

  it("a task returning a child pipeline keeps the child's tasks in the run's trace", async () => {
    const client = ts.client();
    const run = await client.submit(spawn.send(1));
    expect(await run.result()).toBe(12);
    const spans = await traceOfRun(run.id);
    expectConnected(spans);
    const runSpan = spans.find((s) => s.name === "pipewright run")!;
    const attempts = childrenOf(spans, runSpan);
    expect(attempts.map((a) => [a.name, a.attributes["pipewright.outcome"]])).toEqual([
      ["pipewright attempt tr.spawn", "pipeline"],
      ["pipewright attempt tr.add", "value"],
      ["pipewright attempt tr.add", "value"],
    ]);
    expect(named(spans, "pipewright execute")).toHaveLength(3);
  });

  it("a submit with no trace context from the client starts a new trace on the server", async () => {
    // A raw gRPC client: no span, no traceparent in the metadata.
    const raw = createClient(RunService, ts.address);
    try {
      const { run } = await raw.submitRun({ requestId: crypto.randomUUID(), pipeline: add.send(2, 3).toProto() });
      const done = await raw.waitRun({ runId: run!.id });
      expect(done.done).toBe(true);
      const spans = await traceOfRun(run!.id);
      const roots = spans.filter((s) => !parentOf(s));
      expect(roots.map((s) => s.name)).toEqual(["pipewright.v1.RunService/SubmitRun"]);
      expect(named(spans, "pipewright execute tr.add")).toHaveLength(1);
      expect(spans.map((s) => s.name).sort()).toEqual([
        "pipewright attempt tr.add",
        "pipewright execute tr.add",
        "pipewright run",
        "pipewright.v1.RunService/SubmitRun",
      ]);
    } finally {
      raw.close();
    }
  });

  it("a batch submit is one trace: one client span, one server span, a run span per run", async () => {
    const client = ts.client();
    const runs = await client.submitMany([add.send(1, 0), add.send(2, 0)]);
    for (const r of runs) await r.result();
    const [a, b] = await Promise.all(runs.map((r) => traceOfRun(r.id)));
    expect(a[0].spanContext().traceId).toBe(b[0].spanContext().traceId);
    const spans = await traceOfRun(runs[1].id); // by now, both runs' spans
    const root = expectConnected(spans);
    expect(root.attributes["pipewright.runs"]).toBe(2);
    const [submit] = childrenOf(spans, root);
    expect(submit.name).toBe("pipewright.v1.RunService/BatchSubmitRuns");
    expect(
      childrenOf(spans, submit)
        .map((s) => s.attributes["pipewright.run.id"])
        .sort(),
    ).toEqual(runs.map((r) => r.id).sort());
    expect(named(spans, "pipewright execute tr.add")).toHaveLength(2);
  });
});

describe("after a restart", () => {
  it("attempts the restarted server dispatches are children of the run's stored context, in the client's trace", async () => {
    const client = ts.client();
    const run = await client.submit(gate.send().continueWith(add, 1));
    await until("the gate runs", () => gateRuns === 1);
    const [row] = await ts.server.sql<{ traceparent: string }[]>`select traceparent from runs where uid = ${run.id}::uuid`;
    const [, traceId, runSpanId] = row.traceparent.split("-");
    // The stop drains for 2 s and gives up on the gate; the restarted server re-queues it
    // (the same stored assignment), applies its result and dispatches `add`.
    await ts.stopServer();
    await ts.restartServer();
    await until("the gate runs again", () => gateRuns === 2);
    openGate();
    expect(await run.result()).toBe(2);
    let attempt: ReadableSpan | undefined;
    await until("the add attempt's span ended", () => !!(attempt = exporter.getFinishedSpans().find((s) => s.name === "pipewright attempt tr.add")));
    expect(attempt!.spanContext().traceId).toBe(traceId);
    expect(parentOf(attempt!)).toBe(runSpanId); // the stored context, read back by the restarted server
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    expectConnected(spans);
    // The first server ended the run's span when it stopped (and the gate's attempt span with it).
    const runSpans = spans.filter((s) => s.name === "pipewright run");
    expect(runSpans.map((s) => [id(s), s.attributes["pipewright.run.state"]])).toEqual([[runSpanId, "stopped"]]);
    expect(named(spans, "pipewright attempt tr.gate").map((s) => s.attributes["pipewright.outcome"])).toEqual(["interrupted"]);
    // Both executions of the gate (before and after the restart) came from the same stored assignment.
    const gateAttempt = id(named(spans, "pipewright attempt tr.gate")[0]);
    expect(named(spans, "pipewright execute tr.gate").map(parentOf)).toEqual([gateAttempt, gateAttempt]);
    expect(spans.filter((s) => s.name === "pipewright execute tr.add").map(parentOf)).toEqual([id(attempt!)]);
  }, 30_000);
});

function hr(t: [number, number]): number {
  return t[0] * 1e9 + t[1];
}
