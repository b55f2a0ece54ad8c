// A Dispatcher driven directly, without an engine: its own database (a copy
// of the migrated template), a real gRPC server on a loopback port serving
// WorkerService with it, real worker streams (RawWorker), and in place of
// the engine a sink that records what the dispatcher sends it. Queue rows
// are written by hand, so a test decides exactly what is ready, and when;
// the dispatcher's periodic poll is off unless a test asks for it, so every
// claim is one the test caused.

import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { implement, serviceDefinition, TaskAssignmentSchema, WorkerService, type Value } from "@pipewright/protocol";
import { errorMapper } from "../../server/api/error-mapping.js";
import { Dispatcher, type DispatcherConfig } from "../../server/dispatch/dispatcher.js";
import type { IncomingResult, ResultSink } from "../../server/engine/ports.js";
import { connect, type Sql } from "../../server/store/database.js";
import { silentLogger } from "../../server/observe/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { memoryLog, type LogLine } from "./memory-log.js";
import { RawWorker } from "./raw-worker.js";

/** What the dispatcher told the engine, in order. */
export class RecordingSink {
  readonly results: IncomingResult[] = [];
  readonly running: { runId: number; step: number }[] = [];
  readonly progress: { runId: number; step: number; progress: Value }[] = [];
  /** Date.now() when each result arrived, by index in `results`. */
  readonly resultTimes: number[] = [];

  readonly sink: ResultSink = {
    results: (results) => {
      for (const r of results) {
        this.results.push(r);
        this.resultTimes.push(Date.now());
      }
    },
    running: (runId, step) => void this.running.push({ runId, step }),
    progress: (runId, step, progress) => void this.progress.push({ runId, step, progress }),
  };
}

export interface QueueRowSpec {
  task: string;
  queue?: string;
  /** When the row becomes ready (ms since the epoch); default: now. */
  availableAt?: number;
  executionTimeoutMs?: number;
  heartbeatTimeoutMs?: number;
  /** Times the attempt already lost its worker. */
  lostCount?: number;
}

export interface QueuedRow {
  runId: number;
  runUid: string;
  step: number;
}

export interface DispatchHarness {
  dispatcher: Dispatcher;
  /** The test's own connection (the dispatcher's pool may go through a proxy). */
  sql: Sql;
  address: string;
  recorded: RecordingSink;
  /** The dispatcher's log messages (JSON lines, parsed: `logLines`). */
  log: string[];
  logLines(): LogLine[];
  /** Claim statements the dispatcher sent to PostgreSQL so far. */
  claims(): number;
  /** Writes ready (or delayed) rows, one run each. */
  enqueue(...rows: QueueRowSpec[]): Promise<QueuedRow[]>;
  /** A worker speaking the protocol by hand, dropped by stop(). */
  worker(tasks: string[], slots?: number, queues?: string[]): RawWorker;
  /** The dispatcher's id of the one connected session (waits for it). */
  sessionId(): Promise<string>;
  stop(): Promise<void>;
}

export interface DispatchHarnessOptions {
  config?: Partial<DispatcherConfig>;
  /** The URL the dispatcher's pool connects to, given the database's (a proxy's, say). */
  dispatcherUrl?: (databaseUrl: string) => string;
}

export async function startDispatchHarness(options: DispatchHarnessOptions = {}): Promise<DispatchHarness> {
  const db: TestDatabase = await createTestDatabase();
  const sql = connect(db.url, { max: 4 });
  const pool = connect(options.dispatcherUrl?.(db.url) ?? db.url, { max: 4 });
  let claims = 0;
  // postgres.js calls `debug` with each statement it sends: the claims are counted on the wire's way out.
  pool.options.debug = (_connection, query) => {
    if (query.includes("with picked as")) claims++;
  };
  const memory = memoryLog("debug");
  const recorded = new RecordingSink();
  const config: DispatcherConfig = {
    processId: randomUUID(),
    heartbeatIntervalMs: 60_000,
    leaseMs: 30_000,
    pollIntervalMs: 3_600_000,
    maxLostAttempts: 5,
    circuits: { threshold: 0, cooldownMs: 1000 },
    log: memory.logger,
    ...options.config,
  };
  const dispatcher = new Dispatcher(pool, config, recorded.sink);
  const server = new grpc.Server();
  server.addService(serviceDefinition(WorkerService), implement(WorkerService, { connect: (call) => dispatcher.connect(call) }, errorMapper(silentLogger())));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  await dispatcher.start();
  const workers: RawWorker[] = [];
  let step = 0;

  return {
    dispatcher,
    sql,
    address,
    recorded,
    get log() {
      return memory.messages();
    },
    logLines: memory.lines,
    claims: () => claims,
    async enqueue(...rows) {
      const out: QueuedRow[] = [];
      for (const r of rows) {
        const assignment = create(TaskAssignmentSchema, {
          task: r.task,
          executionTimeout: r.executionTimeoutMs ? durationFromMs(r.executionTimeoutMs) : undefined,
          heartbeatTimeout: r.heartbeatTimeoutMs ? durationFromMs(r.heartbeatTimeoutMs) : undefined,
        });
        const [run] = await sql<
          { id: number; uid: string }[]
        >`insert into runs (uid, state, spec) values (gen_random_uuid(), 1, ${Buffer.alloc(0)}) returning id, uid::text`;
        const available = new Date(r.availableAt ?? Date.now());
        await sql`
          insert into task_queue (run_id, step, task, queue, available_at, assignment, lost_count)
          values (${run.id}, ${++step}, ${r.task}, ${r.queue ?? ""}, ${available}, ${Buffer.from(toBinary(TaskAssignmentSchema, assignment))}, ${r.lostCount ?? 0})`;
        out.push({ runId: run.id, runUid: run.uid, step });
      }
      return out;
    },
    worker(tasks, slots = 1, queues = []) {
      const w = new RawWorker(address, tasks, slots, queues);
      workers.push(w);
      return w;
    },
    async sessionId() {
      const until = Date.now() + 5000;
      while (dispatcher.workerCount !== 1) {
        if (Date.now() > until) throw new Error(`expected one session, found ${dispatcher.workerCount}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return dispatcher.workers()[0].id;
    },
    async stop() {
      for (const w of workers) if (!w.ended) w.drop();
      await dispatcher.drain(0);
      server.forceShutdown();
      await pool.end({ timeout: 1 }).catch(() => {});
      await sql.end({ timeout: 1 }).catch(() => {});
      await db.drop();
    },
  };
}
