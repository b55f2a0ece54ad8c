// Prometheus metrics, end to end: a real server with its metrics endpoint on a
// loopback port, a real SDK worker and a worker speaking the protocol by hand
// (it holds attempts, lets one time out, answers late, then drops its stream),
// pipelines that succeed, fail, retry, fan out, time out and wait in queues
// nobody serves. GET /metrics is parsed and each family must hold exactly what
// happened.

import { readFile } from "node:fs/promises";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inParallel, waitForSignal } from "../../client/pipeline-builder.js";
import { ValueSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { DEFAULT_CONFIG, parseConfig } from "../../server/config.js";
import { Metrics } from "../../server/observe/metrics.js";
import { startServer } from "../../server/server.js";
import { parsePrometheusText, type Scrape } from "../support/prometheus-text.js";
import { RawWorker } from "../support/raw-worker.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";
import * as ex from "../../examples/tasks.js";
import { until } from "../support/until.js";

let ts: TestServer;
let raw: RawWorker | undefined;

beforeAll(async () => {
  // Runs that only wait are parked after 200 ms: the parked and unparked counters move (no other test here waits).
  ts = await startTestServer({ metricsAddress: "127.0.0.1:0", circuitBreakerThreshold: 2, circuitBreakerCooldownMs: 3_600_000, parkWaitsOverMs: 200 });
  await ts.worker({ tasks: t.testTasks, slots: 4 });
});
afterAll(async () => {
  t.resetGates();
  t.downstreamService.healthy = true;
  raw?.drop();
  await ts?.stop();
});

async function get(path: string, init?: RequestInit): Promise<Response> {
  return fetch(`http://${ts.server.metricsAddress}${path}`, init);
}

async function scrape(): Promise<Scrape> {
  const res = await get("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe("GET /metrics", () => {
  it("holds the right values after pipelines that succeed, fail, retry, time out, are re-queued and wait", async () => {
    const client = ts.client();

    // Succeeding: a continuation, a group of three, a retry that succeeds on its second try.
    const a = await client.submit(ex.multiply.send(3, 2).continueWith(ex.divide, 2));
    const b = await client.submit(inParallel([t.echo.send(1), t.echo.send(2), t.echo.send(3)]));
    const c = await client.submit(t.flaky.withOptions({ retry: { maxAttempts: 3, initialDelayMs: 10 } }).send(2));
    expect(await a.result()).toBe(3);
    expect(await b.result()).toEqual([[1], [2], [3]]);
    expect(await c.result()).toBe(2);

    // Failing: a terminal error; two failures of one task in a row open its circuit (threshold 2).
    const d = await client.submit(t.failWith.send("Boom", "boom", true));
    expect((await d.wait()).state).toBe(RunState.FAILED);
    t.downstreamService.healthy = false;
    for (const x of [1, 2]) expect((await (await client.submit(t.downstream.send(x))).wait()).state).toBe(RunState.FAILED);
    t.downstreamService.healthy = true;

    // A task holding one of the SDK worker's 4 slots: slots used 1, free 3.
    const h = await client.submit(t.gate.send("hold"));
    await until("the gate task started", () => t.journal.includes("start hold"));
    let m = await scrape();
    expect(m.value("pipewright_worker_slots_used", { queue: "default" })).toBe(1);
    expect(m.value("pipewright_worker_slots_free", { queue: "default" })).toBe(3);
    t.openGate("hold");
    expect(await h.result()).toBe("hold");

    // A hand-made worker on queue "raw": its first attempt times out (execution timeout), its late
    // result is dropped as stale; its second is re-queued when it drops its stream.
    raw = new RawWorker(ts.address, ["nap", "gate"], 2, ["raw"]);
    const e = await client.submit(t.nap.withOptions({ queue: "raw", executionTimeoutMs: 200 }).send(1));
    const [timedOut] = await raw.waitForAssignments(1);
    expect((await e.wait()).state).toBe(RunState.FAILED);
    raw.result(timedOut.key!, create(ValueSchema, {}));
    await until("the late result dropped", async () => (await scrape()).value("pipewright_stale_results_total") === 1);
    const f = await client.submit(t.gate.withOptions({ queue: "raw" }).send("never"));
    await raw.waitForAssignments(2);
    raw.drop();
    await until("the raw worker's attempt re-queued", async () => (await scrape()).value("pipewright_attempts_requeued_total") === 1);

    // Three runs on a queue no worker serves.
    const waiting = await Promise.all([1, 2, 3].map((i) => client.submit(ex.multiply.withOptions({ queue: "nobody" }).send(i, i))));
    await ts.server.engine.idle();
    await new Promise((r) => setTimeout(r, 50)); // the oldest of them waited a little

    m = await scrape();
    // Runs: 12 submitted; 4 succeeded (a, b, c, h), 4 failed (d, two downstream, e); f and the 3 waiting are active.
    expect(m.value("pipewright_runs_submitted_total")).toBe(12);
    expect(m.value("pipewright_runs_finished_total", { state: "succeeded" })).toBe(4);
    expect(m.value("pipewright_runs_finished_total", { state: "failed" })).toBe(4);
    expect(m.find("pipewright_runs_finished_total", { state: "cancelled" })).toEqual([]);
    expect(m.value("pipewright_runs_active")).toBe(4);

    // Tasks dispatched and finished, per task, queue and outcome.
    const dispatched = Object.fromEntries(m.find("pipewright_tasks_dispatched_total").map((s) => [`${s.labels.task}@${s.labels.queue}`, s.value]));
    expect(dispatched).toEqual({
      "multiply@default": 1,
      "divide@default": 1,
      "echo@default": 3,
      "flaky@default": 2,
      "fail_with@default": 1,
      "downstream@default": 2,
      "gate@default": 1,
      "nap@raw": 1,
      "gate@raw": 1,
    });
    const finished = Object.fromEntries(
      m.find("pipewright_tasks_finished_total").map((s) => [`${s.labels.task}@${s.labels.queue}:${s.labels.outcome}`, s.value]),
    );
    expect(Object.fromEntries(Object.entries(finished).filter(([, v]) => v > 0))).toEqual({
      "multiply@default:succeeded": 1,
      "divide@default:succeeded": 1,
      "echo@default:succeeded": 3,
      "flaky@default:succeeded": 1,
      "flaky@default:failed": 1,
      "fail_with@default:failed": 1,
      "downstream@default:failed": 2,
      "gate@default:succeeded": 1,
      "nap@raw:timed_out": 1,
    });
    expect(m.value("pipewright_attempts_requeued_total")).toBe(1);
    expect(m.value("pipewright_attempts_timed_out_total")).toBe(1);
    expect(m.value("pipewright_stale_results_total")).toBe(1);

    // Histograms: one observation per attempt handed out (queue wait, by queue) and per attempt ended (execution, by task).
    expect(m.value("pipewright_task_queue_wait_seconds_count", { queue: "default" })).toBe(11);
    expect(m.value("pipewright_task_queue_wait_seconds_count", { queue: "raw" })).toBe(2);
    const executions = Object.fromEntries(m.find("pipewright_task_execution_seconds_count").map((s) => [s.labels.task, s.value]));
    expect(executions).toEqual({ multiply: 1, divide: 1, echo: 3, flaky: 2, fail_with: 1, downstream: 2, gate: 1, nap: 1 });
    // The timed-out nap ran for its 200 ms timeout (checked every 100 ms): in the buckets above 0.1 s, none at or below it.
    expect(m.value("pipewright_task_execution_seconds_bucket", { task: "nap", le: "0.1" })).toBe(0);
    expect(m.value("pipewright_task_execution_seconds_bucket", { task: "nap", le: "0.5" })).toBe(1);
    expect(m.value("pipewright_task_execution_seconds_sum", { task: "nap" })).toBeGreaterThanOrEqual(0.2);
    // The held gate took at least as long as the scrape in between; every bucket is cumulative up to +Inf = count.
    expect(m.value("pipewright_task_execution_seconds_bucket", { task: "echo", le: "+Inf" })).toBe(3);
    expect(m.types.get("pipewright_task_execution_seconds")).toBe("histogram");
    expect(m.types.get("pipewright_tasks_finished_total")).toBe("counter");

    // Queue depth: the whole queue, per queue and task; served pairs with nothing waiting are 0.
    expect(m.value("pipewright_queue_depth", { queue: "nobody", task: "multiply" })).toBe(3);
    expect(m.value("pipewright_queue_depth", { queue: "raw", task: "gate" })).toBe(1);
    expect(m.value("pipewright_queue_depth", { queue: "default", task: "echo" })).toBe(0);
    const oldest = m.value("pipewright_queue_oldest_age_seconds", { queue: "nobody", task: "multiply" });
    expect(oldest).toBeGreaterThanOrEqual(0.04);
    expect(oldest).toBeLessThan(60);
    expect(m.value("pipewright_queue_oldest_age_seconds", { queue: "default", task: "echo" })).toBe(0);

    // Workers and slots (the raw worker is gone; the SDK worker is idle).
    expect(m.value("pipewright_workers_connected")).toBe(1);
    expect(m.value("pipewright_worker_slots_used", { queue: "default" })).toBe(0);
    expect(m.value("pipewright_worker_slots_free", { queue: "default" })).toBe(4);
    expect(m.find("pipewright_worker_slots_free", { queue: "raw" })).toEqual([]);

    // Circuits: downstream's opened after its two failures; flaky's closed (its failure was followed by a success).
    expect(m.value("pipewright_circuit_state", { task: "downstream", state: "open" })).toBe(1);
    expect(m.value("pipewright_circuit_state", { task: "downstream", state: "closed" })).toBe(0);
    expect(m.value("pipewright_circuit_state", { task: "flaky", state: "closed" })).toBe(1);

    // Group commits: each one timed and sized; together they carried at least every submit and result.
    const commits = m.value("pipewright_commit_duration_seconds_count");
    expect(commits).toBeGreaterThan(0);
    expect(m.value("pipewright_commit_batch_items_count")).toBe(commits);
    expect(m.value("pipewright_commit_batch_items_sum")).toBeGreaterThanOrEqual(12 + 12);

    // The pool: its size, and this process's connections as PostgreSQL sees them.
    expect(m.value("pipewright_db_pool_connections_max")).toBe(ts.config.poolSize);
    const open = m.sum("pipewright_db_pool_connections");
    expect(open).toBeGreaterThanOrEqual(1);
    expect(open).toBeLessThanOrEqual(ts.config.poolSize);
    expect(m.find("pipewright_metrics_scrape_errors_total")).toEqual([]);

    // Process metrics, in this server's registry.
    expect(m.value("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(m.value("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);

    // Cancelling one waiting run: counted as cancelled, the queue one row shorter.
    await client.run(waiting[0].id).cancel();
    await client.run(f.id).cancel();
    m = await scrape();
    expect(m.value("pipewright_runs_finished_total", { state: "cancelled" })).toBe(2);
    expect(m.value("pipewright_runs_active")).toBe(2);
    expect(m.value("pipewright_queue_depth", { queue: "nobody", task: "multiply" })).toBe(2);
    expect(m.find("pipewright_queue_depth", { queue: "raw" })).toEqual([]);
  });

  it("has every metric the Grafana dashboard (docs/grafana-dashboard.json) queries, and the dashboard shows every pipewright family", async () => {
    const dashboard = JSON.parse(await readFile("docs/grafana-dashboard.json", "utf8")) as { panels: { targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const queried = new Set(exprs.flatMap((e) => e.match(/\b(pipewright|process|nodejs)_[a-z0-9_]+\b/g) ?? []));
    expect(queried.size).toBeGreaterThan(20);
    const m = await scrape();
    const present = new Set([...m.samples.map((s) => s.name), ...m.types.keys()]);
    expect([...queried].filter((name) => !present.has(name))).toEqual([]);
    const families = [...m.types.keys()].filter((f) => f.startsWith("pipewright_"));
    const shown = (f: string) => [...queried].some((q) => q === f || q.startsWith(`${f}_`));
    expect(families.filter((f) => !shown(f))).toEqual([]);
  });

  it("matches GetServerStatus's counters (one source for both)", async () => {
    // A run parked while it waits for a signal, then loaded again by it: both counters at 1 or more.
    const waiting = await ts.client().submit(waitForSignal("metrics-go"));
    await until("the run parked", () => ts.server.engine.stats().parked >= 1, 10_000);
    await waiting.signal("metrics-go", 1);
    await waiting.wait(10_000);
    const m = await scrape();
    const runs = ts.server.engine.stats();
    const dispatch = ts.server.dispatcher.stats();
    expect(m.value("pipewright_runs_active")).toBe(runs.activeRuns);
    expect(m.value("pipewright_stale_results_total")).toBe(runs.staleResults + dispatch.staleResults);
    expect(m.value("pipewright_attempts_timed_out_total")).toBe(runs.timedOut + dispatch.timedOut);
    expect([m.value("pipewright_runs_parked_total"), m.value("pipewright_runs_unparked_total")]).toEqual([runs.parked, runs.unparked]);
    expect(runs.parked).toBeGreaterThanOrEqual(1);
    expect(runs.unparked).toBeGreaterThanOrEqual(1);
    expect(m.value("pipewright_attempts_requeued_total")).toBe(dispatch.requeued);
  });

  it("answers 404 elsewhere, and neither malformed, huge nor slow requests hurt it", async () => {
    expect((await get("/")).status).toBe(404);
    expect((await get("/metrics/x")).status).toBe(404);
    expect((await get("/metrics", { method: "DELETE" })).status).toBe(404);
    expect((await get("/metrics?x=1")).status).toBe(200);

    const [host, port] = [ts.server.metricsAddress!.split(":")[0], Number(ts.server.metricsAddress!.split(":")[1])];
    const exchange = (data: string | Buffer, keepWriting = false) =>
      new Promise<string>((resolve) => {
        const socket = net.connect(port, host);
        let answer = "";
        socket.on("data", (d) => (answer += d));
        socket.on("error", () => {});
        socket.on("close", () => resolve(answer));
        socket.write(data);
        if (keepWriting) {
          // 20 MB of body, as fast as the socket takes it: the answer comes and the connection closes anyway.
          const chunk = Buffer.alloc(1 << 20, 97);
          let sent = 0;
          const more = () => {
            while (sent < 20 && !socket.destroyed && socket.write(chunk)) sent++;
            if (sent < 20 && !socket.destroyed) socket.once("drain", more);
          };
          more();
        }
      });
    expect(await exchange("BLAH BLAH\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect(await exchange(`GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(100_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 4(31|00)/);
    expect(await exchange("POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 20971520\r\n\r\n", true)).toMatch(/^HTTP\/1\.1 404/);
    expect(await exchange(`GET /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 20971520\r\n\r\n`, true)).toMatch(
      /^HTTP\/1\.1 200[\s\S]*pipewright_runs_active/,
    );

    // Still serving, metrics and gRPC alike.
    expect((await scrape()).value("pipewright_workers_connected")).toBe(1);
    expect(await (await ts.client().submit(ex.multiply.send(2, 5))).result()).toBe(10);
  });
});

describe("metrics off", () => {
  it("binds no port unless --metrics-address is given", async () => {
    expect(DEFAULT_CONFIG.metricsAddress).toBe("");
    expect(parseConfig([], { PIPEWRIGHT_METRICS_ADDRESS: "127.0.0.1:9464" }).metricsAddress).toBe("127.0.0.1:9464");
    const listening = () => process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length;
    const before = listening();
    const off = await startTestServer();
    const withoutMetrics = listening() - before;
    const on = await startTestServer({ metricsAddress: "127.0.0.1:0" });
    const withMetrics = listening() - before - withoutMetrics;
    try {
      expect(off.server.metricsAddress).toBeUndefined();
      expect(withMetrics).toBe(withoutMetrics + 1);
      expect(on.server.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      // Off, the server still counts (GetServerStatus reads the same counters), but keeps no process metrics.
      expect(await off.server.metrics.registry.getSingleMetricAsString("pipewright_runs_submitted_total")).toContain("pipewright_runs_submitted_total 0");
      expect(off.server.metrics.registry.getSingleMetric("process_cpu_seconds_total")).toBeUndefined();
      // A metrics port already taken fails the start (and leaves nothing listening).
      const taken = listening();
      await expect(startServer({ ...off.config, address: "127.0.0.1:0", metricsAddress: on.server.metricsAddress! })).rejects.toThrow(/EADDRINUSE/);
      expect(listening()).toBe(taken);
    } finally {
      await on.stop();
      await off.stop();
    }
    expect(listening()).toBe(before);
  });

  it("keeps a registry per server, and bounds the series of task names", async () => {
    const one = new Metrics({ maxTaskSeries: 3 });
    const two = new Metrics();
    for (let i = 0; i < 10; i++) one.task(`task${i}`, "").dispatched.inc();
    two.task("task0", "").dispatched.inc();
    const m = parsePrometheusText(await one.text());
    expect(m.find("pipewright_tasks_dispatched_total").map((s) => [s.labels.task, s.value])).toEqual([
      ["task0", 1],
      ["task1", 1],
      ["task2", 1],
      ["_other", 7],
    ]);
    expect(parsePrometheusText(await two.text()).value("pipewright_tasks_dispatched_total", { task: "task0", queue: "default" })).toBe(1);
  });
});
