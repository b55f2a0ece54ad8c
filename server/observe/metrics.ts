// The server's Prometheus metrics: one registry per server process (never
// prom-client's global one: tests start several servers in one process), and
// every metric family, named `pipewright_*` (README "Operating" lists them).
//
// Two ways a value gets here:
// - counted where it happens (runs submitted and finished, tasks dispatched
//   and finished, queue-wait and execution times, group commits): the
//   components get this object through their constructors and count on
//   series bound once per task and queue (TaskSeries, held with each
//   attempt), plain numbers (counted.ts), so counting a task costs a few
//   additions, no allocation and no lookup of labels;
// - read when Prometheus scrapes (active runs, workers and slots, circuits,
//   queue depth, pool connections, and the counters the engine and the
//   dispatcher already keep for GetServerStatus: re-queued, timed out, stale),
//   from the sources the server wires in (MetricSources): one source of truth
//   for each number, and nothing done between scrapes.

import { queueLabel, taskLabel } from "@pipewright/protocol";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { CountFamily, HistogramFamily, type Buckets, type Count } from "./counted.js";

/** What one task attempt counts on: children bound once per (task, queue), held with the attempt. */
export interface TaskSeries {
  /** Attempts handed to a worker. */
  readonly dispatched: Count;
  /** Attempts that ended, by outcome. */
  readonly succeeded: Count;
  readonly failed: Count;
  readonly timedOut: Count;
  /** Seconds from ready (queued, or its retry delay over) to handed to a worker; labelled by queue only. */
  readonly queueWait: Buckets;
  /** Seconds from handed to a worker to its result (or its timeout); labelled by task only. */
  readonly execution: Buckets;
}

/** Per queue (and task): ready rows and how long the oldest has waited, read from the task queue. */
export interface QueueDepth {
  queue: string;
  task: string;
  depth: number;
  oldestSeconds: number;
}

/** A connected worker as the slot gauges see it. */
export interface WorkerSlots {
  queues: Iterable<string>;
  used: number;
  free: number;
}

export type CircuitStateName = "closed" | "open" | "half_open";

/** Where scrape-time values come from (wired by server/server.ts). */
export interface MetricSources {
  activeRuns(): number;
  requeuedAttempts(): number;
  /** Attempts failed by a timeout: wait (for a worker), execution, heartbeat. */
  timedOutAttempts(): number;
  /** Results dropped: late, duplicated or no longer current. */
  staleResults(): number;
  /** Runs parked (they only waited) and loaded again, since start (engine/parking.ts). */
  runsParked(): number;
  runsUnparked(): number;
  workers(): WorkerSlots[];
  /** (task, queue) pairs served by workers here: their depth is 0 when no row waits. */
  served(): [task: string, queue: string][];
  circuits(): { task: string; state: CircuitStateName }[];
  /** Bounded in time and rows by its implementation; may throw (the database is away). */
  queueDepths(): Promise<QueueDepth[]>;
  poolSize: number;
  /** Connections of this process as PostgreSQL sees them, by state (active, idle, ...); may throw. */
  poolConnections(): Promise<{ state: string; count: number }[]>;
}

export interface MetricsOptions {
  /** Also collect prom-client's process metrics (CPU, memory, event loop, GC) into this registry. */
  processMetrics?: boolean;
  /** Most (task, queue) series kept; past it, attempts count under task and queue "_other". */
  maxTaskSeries?: number;
}

/** Past this many (task, queue) pairs, the rest count as one ("_other"): a client naming random tasks cannot blow up the series. */
const MAX_TASK_SERIES = 500;
const OTHER = "_other";

const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000];
/** A scrape's database reads give up after this long (the endpoint answers with the rest). */
const SOURCE_TIMEOUT_MS = 3000;
const CIRCUIT_STATES: CircuitStateName[] = ["closed", "open", "half_open"];

export class Metrics {
  readonly registry = new Registry();

  // ---- counted where it happens ---------------------------------------------
  readonly runsSubmitted: Count = new CountFamily(this.registry, "pipewright_runs_submitted_total", "Runs accepted (committed) by this process.").child();
  readonly runsDeleted: Count = new CountFamily(
    this.registry,
    "pipewright_runs_deleted_total",
    "Finished runs this process deleted: past the retention (--retention-hours) or by DeleteRun.",
  ).child();
  private readonly runsFinished = new CountFamily(
    this.registry,
    "pipewright_runs_finished_total",
    "Runs that ended in this process, by final state (succeeded, failed, cancelled).",
    ["state"],
  );
  private readonly tasksDispatched = new CountFamily(this.registry, "pipewright_tasks_dispatched_total", "Task attempts handed to a worker.", [
    "task",
    "queue",
  ]);
  private readonly tasksFinished = new CountFamily(
    this.registry,
    "pipewright_tasks_finished_total",
    "Task attempts that ended: the worker's result (succeeded, failed) or the server's timeout (timed_out).",
    ["task", "queue", "outcome"],
  );
  private readonly queueWait = new HistogramFamily(
    this.registry,
    "pipewright_task_queue_wait_seconds",
    "Time from a task attempt being ready (queued, or its retry delay over) to being handed to a worker.",
    ["queue"],
    SECONDS_BUCKETS,
  );
  private readonly execution = new HistogramFamily(
    this.registry,
    "pipewright_task_execution_seconds",
    "Time from a task attempt being handed to a worker to its result or its timeout.",
    ["task"],
    SECONDS_BUCKETS,
  );
  readonly commitDuration: Buckets = new HistogramFamily(
    this.registry,
    "pipewright_commit_duration_seconds",
    "Time to build, write and act on one group commit (a batch of submits, results and controls).",
    [],
    COMMIT_BUCKETS,
  ).child();
  readonly commitBatchSize: Buckets = new HistogramFamily(
    this.registry,
    "pipewright_commit_batch_items",
    "Items (submits, results, controls) in one group commit.",
    [],
    BATCH_BUCKETS,
  ).child();

  // ---- read when scraped ----------------------------------------------------
  private readonly activeRuns = this.gauge("pipewright_runs_active", "Runs owned by this process and not finished.");
  private readonly requeued = this.counter(
    "pipewright_attempts_requeued_total",
    "Task attempts put back in the queue because their worker or server process went away.",
  );
  private readonly timedOut = this.counter(
    "pipewright_attempts_timed_out_total",
    "Task attempts failed by a timeout (waiting for a worker, execution, heartbeat).",
  );
  private readonly stale = this.counter(
    "pipewright_stale_results_total",
    "Results dropped because their attempt was no longer current (late, duplicated, timed out).",
  );
  private readonly parked = this.counter(
    "pipewright_runs_parked_total",
    "Runs this process parked: they only waited (a sleep, a signal, an event) and left its memory for the database.",
  );
  private readonly unparked = this.counter(
    "pipewright_runs_unparked_total",
    "Parked runs this process loaded again (their wait was due, or something arrived).",
  );
  private readonly workersConnected = this.gauge("pipewright_workers_connected", "Worker sessions connected to this process.");
  private readonly slotsUsed = this.gauge(
    "pipewright_worker_slots_used",
    "Slots of connected workers holding an attempt, per queue they serve (a worker serving two queues counts in both).",
    ["queue"],
  );
  private readonly slotsFree = this.gauge(
    "pipewright_worker_slots_free",
    "Free slots of connected active workers, per queue they serve (a worker serving two queues counts in both).",
    ["queue"],
  );
  private readonly circuitState = this.gauge("pipewright_circuit_state", "Circuit breaker of a task: 1 for its current state, 0 for the others.", [
    "task",
    "state",
  ]);
  private readonly queueDepth = this.gauge(
    "pipewright_queue_depth",
    "Task attempts ready and waiting for a worker, per queue and task (the whole database: every server process reports the same).",
    ["queue", "task"],
  );
  private readonly oldestQueued = this.gauge(
    "pipewright_queue_oldest_age_seconds",
    "How long the oldest ready task attempt of a queue and task has waited for a worker.",
    ["queue", "task"],
  );
  private readonly poolMax = this.gauge("pipewright_db_pool_connections_max", "Database connections this process may open (--pool-size).");
  private readonly poolConnections = this.gauge(
    "pipewright_db_pool_connections",
    "Database connections of this process open now, by state as PostgreSQL reports it (active: running a statement).",
    ["state"],
  );
  private readonly scrapeErrors = this.counter("pipewright_metrics_scrape_errors_total", "Scrapes whose database reads failed (queue depth, pool).", [
    "source",
  ]);

  private readonly series = new Map<string, Map<string, TaskSeries>>();
  private seriesCount = 0;
  private readonly runStates = new Map<string, Count>();
  private readonly queueWaits = new Map<string, Buckets>();
  private readonly executions = new Map<string, Buckets>();
  private readonly maxTaskSeries: number;
  private sources?: MetricSources;
  private refreshing?: Promise<void>;

  constructor(options: MetricsOptions = {}) {
    this.maxTaskSeries = options.maxTaskSeries ?? MAX_TASK_SERIES;
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The children attempts of `task` on `queue` count on (made once; kept for the process's life, bounded). */
  task(task: string, queue: string): TaskSeries {
    const found = this.series.get(queue)?.get(task);
    if (found) return found;
    return this.seriesCount < this.maxTaskSeries ? this.make(task, queue) : this.make(OTHER, OTHER);
  }

  private make(task: string, queue: string): TaskSeries {
    let byTask = this.series.get(queue);
    if (!byTask) this.series.set(queue, (byTask = new Map()));
    let s = byTask.get(task);
    if (s) return s;
    const q = queueLabel(queue);
    let queueWait = this.queueWaits.get(q);
    if (!queueWait) this.queueWaits.set(q, (queueWait = this.queueWait.child(q)));
    let execution = this.executions.get(task);
    if (!execution) this.executions.set(task, (execution = this.execution.child(task)));
    s = {
      dispatched: this.tasksDispatched.child(task, q),
      succeeded: this.tasksFinished.child(task, q, "succeeded"),
      failed: this.tasksFinished.child(task, q, "failed"),
      timedOut: this.tasksFinished.child(task, q, "timed_out"),
      queueWait,
      execution,
    };
    byTask.set(task, s);
    this.seriesCount++;
    return s;
  }

  /** A run ended in `state` (SUCCEEDED, FAILED, CANCELLED: the RunState name; the label is lower case). */
  runFinished(state: string): void {
    let child = this.runStates.get(state);
    if (!child) this.runStates.set(state, (child = this.runsFinished.child(state.toLowerCase())));
    child.inc();
  }

  /** Where the values read at scrape time come from. */
  readFrom(sources: MetricSources): void {
    this.sources = sources;
  }

  /** The Prometheus text format of every family, read-at-scrape values refreshed first. */
  async text(): Promise<string> {
    // Scrapes arriving together share one refresh (and its database reads).
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
    await this.refreshing;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refresh(): Promise<void> {
    const s = this.sources;
    if (!s) return;
    this.activeRuns.set(s.activeRuns());
    setCounter(this.requeued, s.requeuedAttempts());
    setCounter(this.timedOut, s.timedOutAttempts());
    setCounter(this.stale, s.staleResults());
    setCounter(this.parked, s.runsParked());
    setCounter(this.unparked, s.runsUnparked());

    const workers = s.workers();
    this.workersConnected.set(workers.length);
    const used = new Map<string, number>();
    const free = new Map<string, number>();
    for (const w of workers) {
      for (const q of w.queues) {
        const label = queueLabel(q);
        used.set(label, (used.get(label) ?? 0) + w.used);
        free.set(label, (free.get(label) ?? 0) + w.free);
      }
    }
    this.slotsUsed.reset();
    this.slotsFree.reset();
    for (const [q, n] of used) this.slotsUsed.set({ queue: q }, n);
    for (const [q, n] of free) this.slotsFree.set({ queue: q }, n);

    this.circuitState.reset();
    for (const c of s.circuits()) for (const state of CIRCUIT_STATES) this.circuitState.set({ task: taskLabel(c.task), state }, c.state === state ? 1 : 0);

    this.poolMax.set(s.poolSize);
    const [depths, pool] = await Promise.allSettled([within(s.queueDepths(), SOURCE_TIMEOUT_MS), within(s.poolConnections(), SOURCE_TIMEOUT_MS)]);
    this.queueDepth.reset();
    this.oldestQueued.reset();
    for (const [task, queue] of s.served()) {
      this.queueDepth.set({ queue: queueLabel(queue), task }, 0);
      this.oldestQueued.set({ queue: queueLabel(queue), task }, 0);
    }
    if (depths.status === "fulfilled") {
      for (const d of depths.value) {
        this.queueDepth.set({ queue: queueLabel(d.queue), task: d.task }, d.depth);
        this.oldestQueued.set({ queue: queueLabel(d.queue), task: d.task }, d.oldestSeconds);
      }
    } else this.scrapeErrors.labels("queue_depth").inc();
    this.poolConnections.reset();
    if (pool.status === "fulfilled") for (const c of pool.value) this.poolConnections.set({ state: c.state }, c.count);
    else this.scrapeErrors.labels("pool").inc();
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}

/** `p`, or a rejection once `ms` passed (a pool with no free connection keeps a scrape's query waiting, unbounded by its statement timeout). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  p.catch(() => {}); // still settling after the timeout: nobody waits for it any more
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A counter kept elsewhere (the engine's or dispatcher's own), copied in at scrape time. */
function setCounter(c: Counter, value: number): void {
  c.reset();
  c.inc(value);
}
