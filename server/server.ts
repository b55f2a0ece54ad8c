// Starting and stopping a server: database (embedded or DATABASE_URL),
// migrations, recovery of active runs, dispatcher, gRPC services. main.ts
// calls this with the command-line configuration; tests call it directly.

import { randomUUID } from "node:crypto";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { RunService } from "@pipewright/protocol";
import { WorkerService } from "@pipewright/protocol";
import { AdminService } from "@pipewright/protocol";
import { ScheduleService } from "@pipewright/protocol";
import { scheduleService } from "./api/schedule-service.js";
import { Scheduler } from "./schedule/scheduler.js";
import { EventService } from "@pipewright/protocol";
import { adminService } from "./api/admin-service.js";
import { assertScopeTable, Auth, authEnabled } from "./api/auth.js";
import { callNamespace, namespaceInterceptor } from "./api/namespace.js";
import { implement, serviceDefinition } from "@pipewright/protocol";
import { MAX_MESSAGE_BYTES } from "@pipewright/protocol";
import { Admission } from "./api/admission.js";
import { errorMapper } from "./api/error-mapping.js";
import { createHealth, healthFileDescriptor } from "./api/health.js";
import { startMetricsEndpoint, type MetricsEndpoint } from "./api/metrics-endpoint.js";
import { startDashboardEndpoint, type DashboardEndpoint } from "./api/dashboard-endpoint.js";
import { GATEWAY_MAX_BODY, jsonGateway } from "./api/json-gateway.js";
import { DASHBOARD_METHODS } from "./api/dashboard-methods.js";
import { addReflection } from "./api/reflection.js";
import { guardDatabase } from "./api/database-guard.js";
import { runService } from "./api/run-service.js";
import { eventService } from "./api/event-service.js";
import { prepareSubmits } from "./api/prepare-submit.js";
import { EventPublisher } from "./events/event-publisher.js";
import { EventSweeper } from "./events/event-sweeper.js";
import type { ServerConfig } from "./config.js";
import { checkExposure, serverTls } from "./tls.js";
import { DEFAULT_MACHINE_CONFIG } from "./core/run-machine.js";
import { DEFAULT_RETRY } from "./core/retry-policy.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { LeaseReaper } from "./dispatch/lease-reaper.js";
import { RunEngine } from "./engine/run-engine.js";
import { RetentionSweeper } from "./engine/retention.js";
import { startTracing } from "./observe/tracing.js";
import type { ResultSink } from "./engine/ports.js";
import { Metrics } from "./observe/metrics.js";
import { connect, poolConnections, type Sql } from "./store/database.js";
import { DatabaseMonitor } from "./store/database-monitor.js";
import { componentLogger, silentLogger, type Logger } from "./observe/logger.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./store/embedded-postgres.js";
import { migrate } from "./store/migrate.js";
import { registerProcess, unregisterProcess } from "./store/process-registry.js";
import { queueDepths, reclaimPredecessors } from "./store/task-queue.js";

export interface RunningServer {
  /** host:port actually bound. */
  address: string;
  port: number;
  /** host:port the metrics endpoint is bound to (GET /metrics); undefined when --metrics-address is unset. */
  metricsAddress?: string;
  /** host:port of the dashboard and its JSON API, when --dashboard-address is set. */
  dashboardAddress?: string;
  /** This process's metrics (served at metricsAddress, when set). */
  metrics: Metrics;
  /** Which database, for humans. */
  database: string;
  processId: string;
  sql: Sql;
  engine: RunEngine;
  dispatcher: Dispatcher;
  /** Deletes finished runs past --retention-hours every minute or so; sweep() runs one now. */
  retention: RetentionSweeper;
  /** The tokens and their checks; undefined when auth is off (no tokens configured). */
  auth?: Auth;
  /**
   * Stops: drains workers, commits what is pending, stops the embedded
   * database if this process started it. Bounded: after drainGraceMs +
   * STOP_SLACK_MS it stops anyway (what was not committed re-runs after a
   * restart: at-least-once).
   */
  stop(): Promise<void>;
}

/**
 * What stop() allows beyond the drain grace for committing what workers sent
 * back. A healthy database commits the last results in milliseconds; past
 * this it is unreachable or failing, and waiting longer only keeps one
 * SIGTERM from stopping the process (a commit failing forever retries
 * forever).
 */
export const STOP_SLACK_MS = 5000;

/** Each database read of a metrics scrape (queue depth, pool) gives up after this long. */
const METRICS_QUERY_TIMEOUT_MS = 2000;
/** Most (queue, task) pairs the queue-depth gauges report (the deepest). */
const METRICS_MAX_QUEUE_SERIES = 500;

/**
 * Starts a server. `logger`: where it logs (server/observe/logger.ts; its level is the
 * logger's, config.logLevel is for the command line that makes it); none: nothing is logged.
 *
 * @example
 *   const server = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0" }, createLogger({ level: "debug" }));
 */
export async function startServer(config: ServerConfig, logger: Logger = silentLogger()): Promise<RunningServer> {
  const processId = randomUUID();
  // Each component's logger is a child of this one (not of another component's: pino would write the key twice).
  const root = logger.child({ process_id: processId });
  const log = componentLogger(root, "server");
  // Before anything starts: plaintext or anonymous callers beyond loopback are refused, TLS files must be readable.
  checkExposure(config, authEnabled(config));
  const tls = serverTls(config, log);
  // Every method has its scope (a method missing from the table fails every start), and a
  // tokens file that cannot be read fails the start before anything else is started.
  assertScopeTable([RunService, WorkerService, AdminService, EventService, ScheduleService]);
  const auth = authEnabled(config) ? new Auth({ tokensFile: config.tokensFile, adminToken: config.adminToken, log: componentLogger(root, "api") }) : undefined;
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  let database: string;
  if (url) {
    database = `PostgreSQL at ${redact(url)}`;
  } else {
    const dataDir = path.resolve(config.dataDir);
    embedded = await startEmbeddedPostgres({ dataDir, port: config.embeddedPort || undefined, log: componentLogger(root, "embedded-postgres") });
    url = embedded.url;
    database = `embedded PostgreSQL in ${dataDir} (port ${embedded.port}${embedded.reused ? ", already running" : ""})`;
  }
  // The pool's connections carry the process id: the metrics find them in pg_stat_activity (postgres.js shows nothing of its pool).
  const applicationName = `pipewright ${processId}`;
  const sql = connect(url, { max: config.poolSize, applicationName });
  const monitor = new DatabaseMonitor(url, { log: componentLogger(root, "database") });
  // A postmaster we adopted (reused) belongs to the server process that
  // started it on this data folder: stopping it would leave that one SERVING
  // with no database. Only the process that started it stops it.
  const stopDatabase = async () => {
    if (embedded && !embedded.reused) await embedded.stop();
  };
  // Exporters from the OTEL_* environment only; none set: the global tracer provider (a no-op unless the process registered one).
  const tracing = await startTracing(process.env, processId, (line) => log.warn(line));
  if (tracing.exporters.length) log.info({ exporters: tracing.exporters }, "traces exported (OTEL_* environment)");
  const health = createHealth({ "": "NOT_SERVING" });
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    interceptors: [auth ? auth.interceptor : namespaceInterceptor],
  });
  auth?.watch();
  // One registry per server process; process metrics (CPU, memory, GC) only when they are served.
  const metrics = new Metrics({ processMetrics: config.metricsAddress !== "" });
  let metricsEndpoint: MetricsEndpoint | undefined;
  let dashboardEndpoint: DashboardEndpoint | undefined;
  try {
    await migrate(sql as never);
    const machine = {
      ...DEFAULT_MACHINE_CONFIG,
      maxDepth: config.maxDepth,
      maxTasks: config.maxTasksPerRun,
      defaultRetry: { ...DEFAULT_RETRY, maxAttempts: config.defaultMaxAttempts || 1 },
    };
    // Engine and dispatcher talk both ways (engine/ports.ts): the dispatcher's sink forwards to the engine, made next.
    let engine: RunEngine | undefined;
    const sink: ResultSink = {
      results: (results) => engine!.sink.results(results),
      running: (runId, step, attempt, workerId) => engine!.sink.running(runId, step, attempt, workerId),
      progress: (runId, step, progress) => engine!.sink.progress(runId, step, progress),
    };
    const dispatcher = new Dispatcher(
      sql,
      {
        processId,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        leaseMs: config.leaseMs,
        pollIntervalMs: 500,
        maxLostAttempts: config.maxLostAttempts,
        circuits: { threshold: config.circuitBreakerThreshold, cooldownMs: config.circuitBreakerCooldownMs },
        log: componentLogger(root, "dispatch"),
        metrics,
      },
      sink,
    );
    const timeouts = { waitMs: config.defaultWaitTimeoutMs, executionMs: config.defaultExecutionTimeoutMs, heartbeatMs: config.defaultHeartbeatTimeoutMs };
    engine = new RunEngine(sql, dispatcher, {
      machine,
      processId,
      leaseMs: config.leaseMs,
      timeouts,
      processTimeoutMs: config.processTimeoutMs,
      remoteWaitPollMs: config.remoteWaitPollMs,
      parkWaitsOverMs: config.parkWaitsOverMs,
      log: componentLogger(root, "engine"),
      metrics,
      tracer: tracing.tracer,
    });
    const onError = errorMapper(componentLogger(root, "api"));
    // How long the event loop was ever blocked (AdminService.GetServerStatus): whatever a client
    // sends, every other client waits behind it.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const admission = new Admission({
      maxTasksPerRun: config.maxTasksPerRun,
      maxMessagesPerRequest: config.maxRequestMessages,
      maxMessagesInFlight: config.maxMessagesInFlight,
    });
    const runs = guardDatabase(runService(engine, sql, { maxTasks: config.maxTasksPerRun }, tracing.tracer), monitor);
    server.addService(serviceDefinition(RunService, admission.inspectorsFor(RunService)), implement(RunService, runs, onError));
    server.addService(
      serviceDefinition(WorkerService, admission.inspectorsFor(WorkerService)),
      implement(WorkerService, { connect: (call) => dispatcher.connect(call, callNamespace(call.metadata)) }, onError),
    );
    const admin = adminService(engine, dispatcher, processId, Date.now(), {
      eventLoopMaxDelayMs: () => loopDelay.max / 1e6,
      busyRefusals: () => admission.busyRefusals,
    });
    server.addService(serviceDefinition(AdminService, admission.inspectorsFor(AdminService)), implement(AdminService, admin, onError));
    const limits = { maxTasks: config.maxTasksPerRun };
    const events = new EventPublisher({
      sql,
      engine,
      log: componentLogger(root, "engine"),
      prepare: async (request, namespace) => (await prepareSubmits([request], limits, () => "", undefined, namespace))[0],
      // Steps waiting for the event (Wait.event): through their runs' owners' inboxes, idempotent by event id.
      waiters: { deliver: (namespace, e) => engine.deliverEvent(namespace, { id: e.eventId, name: e.name, payload: e.payload }).then(() => {}) },
    });
    const eventCalls = guardDatabase(eventService(events, sql, limits), monitor);
    server.addService(serviceDefinition(EventService, admission.inspectorsFor(EventService)), implement(EventService, eventCalls, onError));
    const scheduler = new Scheduler(sql, engine, { log: componentLogger(root, "schedule") });
    const schedules = guardDatabase(scheduleService(sql, scheduler, limits), monitor);
    server.addService(serviceDefinition(ScheduleService, admission.inspectorsFor(ScheduleService)), implement(ScheduleService, schedules, onError));
    server.addService(health.definition, health.implementation);
    addReflection(server, [RunService, WorkerService, AdminService, EventService, ScheduleService], [healthFileDescriptor]);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(config.address, tls?.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    // Bound next to the gRPC port, so that a taken metrics port fails the start before anything runs.
    metrics.readFrom({
      activeRuns: () => engine!.stats().activeRuns,
      requeuedAttempts: () => dispatcher.stats().requeued,
      timedOutAttempts: () => engine!.stats().timedOut + dispatcher.stats().timedOut,
      staleResults: () => engine!.stats().staleResults + dispatcher.stats().staleResults,
      runsParked: () => engine!.stats().parked,
      runsUnparked: () => engine!.stats().unparked,
      workers: () => dispatcher.workers().map((s) => ({ queues: s.queues, used: s.held.size + s.reserved, free: s.free })),
      served: () => dispatcher.served(),
      circuits: () => dispatcher.circuits(),
      queueDepths: () => queueDepths(sql, METRICS_MAX_QUEUE_SERIES, METRICS_QUERY_TIMEOUT_MS),
      poolSize: config.poolSize,
      poolConnections: () => poolConnections(sql, applicationName, METRICS_QUERY_TIMEOUT_MS),
    });
    if (config.metricsAddress)
      metricsEndpoint = await startMetricsEndpoint(
        config.metricsAddress,
        metrics,
        componentLogger(root, "api"),
        tls,
        auth && ((header) => auth.checkMetrics(header)),
      );
    if (config.dashboardAddress) {
      const gateway = jsonGateway(
        [
          { service: RunService, impl: runs, methods: DASHBOARD_METHODS.runs },
          { service: AdminService, impl: admin, methods: DASHBOARD_METHODS.admin },
          { service: ScheduleService, impl: schedules, methods: DASHBOARD_METHODS.schedules },
          { service: EventService, impl: eventCalls, methods: DASHBOARD_METHODS.events },
        ],
        { onError, auth, maxBodyBytes: GATEWAY_MAX_BODY },
      );
      dashboardEndpoint = await startDashboardEndpoint(config.dashboardAddress, gateway, componentLogger(root, "api"), tls);
    }
    const host = config.address.slice(0, config.address.lastIndexOf(":"));
    const identity = `${os.hostname()}/${host}:${port}`;
    await registerProcess(sql, processId, identity);
    // A previous server at this very address is dead (we hold its port): its
    // attempts go back to the queue and its runs are adopted below at once.
    const reclaimed = await reclaimPredecessors(sql, processId, identity);
    if (reclaimed.length)
      log.warn({ attempts: reclaimed.length, identity }, `re-queued ${reclaimed.length} attempts held by the previous server at ${identity}`);
    const recovered = await engine.recover();
    if (recovered) log.info({ runs: recovered }, `recovered ${recovered} active runs`);
    const reaper = new LeaseReaper(sql, {
      processId,
      intervalMs: Math.min(2000, config.processTimeoutMs / 3),
      processSilenceMs: config.processTimeoutMs,
      log: componentLogger(root, "dispatch"),
      onRequeued: (lost) => dispatcher.lost(lost, "its worker or server process went silent"),
      serves: () => dispatcher.served(),
    });
    reaper.start();
    const retention = new RetentionSweeper(sql, {
      hours: config.retentionHours,
      log: componentLogger(root, "engine"),
      metrics,
      forget: (uids, cutoffMs) => {
        engine!.forgetRuns(uids);
        engine!.forgetFinishedBefore(cutoffMs);
      },
    });
    retention.start();
    const eventSweeper = new EventSweeper(sql, events, { retentionHours: config.retentionHours, log: componentLogger(root, "engine") });
    eventSweeper.start();
    await dispatcher.start();
    await engine.start();
    await scheduler.start();
    dispatcher.lost(reclaimed, "the previous server at this address died");
    const serving = (up: boolean) => {
      for (const name of ["", "pipewright.v1.RunService", "pipewright.v1.WorkerService", "pipewright.v1.ScheduleService"])
        health.setStatus(name, up ? "SERVING" : "NOT_SERVING");
    };
    monitor.onChange(serving);
    await monitor.start();
    serving(monitor.up);
    log.info({ address: `${host}:${port}`, database, recovered_runs: recovered }, "server started");
    let stopping: Promise<void> | undefined;
    return {
      address: `${host}:${port}`,
      port,
      metricsAddress: metricsEndpoint?.address,
      dashboardAddress: dashboardEndpoint?.address,
      metrics,
      database,
      processId,
      sql,
      engine,
      dispatcher,
      retention,
      auth,
      stop: () =>
        (stopping ??= (async () => {
          health.shutdown();
          loopDelay.disable();
          await retention.stop();
          await scheduler.stop();
          await eventSweeper.stop();
          const started = Date.now();
          const committed = await within(
            (async () => {
              await dispatcher.drain(config.drainGraceMs);
              await engine.close();
            })().catch((err) => log.error({ err }, `stopping: ${(err as Error).message}`)),
            config.drainGraceMs + STOP_SLACK_MS,
          );
          if (!committed) {
            log.warn(
              { active_runs: engine.stats().activeRuns, workers: dispatcher.workerCount, database_up: monitor.up },
              `stopping without committing everything: still not done after ${Date.now() - started} ms (database ${monitor.up ? "reachable" : "unreachable"}); ` +
                `${engine.stats().activeRuns} active runs, ${dispatcher.workerCount} workers connected; results not committed are re-run after a restart (at-least-once)`,
            );
          }
          reaper.stop();
          auth?.close();
          await metricsEndpoint?.close();
          await dashboardEndpoint?.close();
          tls?.close();
          server.forceShutdown();
          await new Promise((r) => setTimeout(r, 50)); // let closing sessions re-queue what they held
          await within(
            unregisterProcess(sql, processId).catch(() => {}),
            1000,
          );
          await monitor.stop();
          await sql.end({ timeout: committed ? 5 : 0 }).catch(() => {});
          await within(tracing.shutdown(), 5000); // the spans of the last runs, exported
          await stopDatabase();
          log.info({ stop_ms: Date.now() - started }, "server stopped");
        })()),
    };
  } catch (err) {
    auth?.close();
    await metricsEndpoint?.close();
    await dashboardEndpoint?.close();
    tls?.close();
    server.forceShutdown();
    await tracing.shutdown();
    await monitor.stop();
    await sql.end({ timeout: 1 }).catch(() => {});
    await stopDatabase();
    throw err;
  }
}

/** Whether `work` (which must not reject) finished within `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}
