/**
 * Peer benchmark: the Pipewright throughput workload run on graphile-worker 0.17.3.
 *
 *   node --import tsx bench/peer-graphile.ts --database-url <url> --jobs 20000 \
 *     [--concurrency N] [--processes P] [--batch B] [--warmup W] [--schema S] [--json]
 *
 * Setup. The parent process runs graphile's migrations into its own schema (graphile_worker by
 * default) in the given scratch database and truncates its job tables, so every run starts
 * empty. It then forks P worker processes (this same script with --worker), each a graphile
 * runner with one task, `noop`, that returns at once; it waits until all of them are up and
 * idle, then runs an untimed warm-up round of --warmup jobs. Only then does the clock start: the
 * parent enqueues --jobs jobs with workerUtils.addJobs in batches of --batch (one add_jobs call,
 * one transaction per batch) while the workers run, and the clock stops when the last job's
 * completion is committed.
 *
 * Options are graphile's own "batched mode" from its performance doc (website/docs/performance.md):
 * localQueue { size: 500 }, completeJobBatchDelay 0, failJobBatchDelay 0, several concurrent
 * jobs per process, maxPoolSize = concurrency + 1. Per-job success logging is off
 * (NO_LOG_SUCCESS, as graphile's perfTest does). Defaults: see DEFAULTS below.
 *
 * Why it is a fair peer: same PostgreSQL server and database settings (fsync on) as the
 * Pipewright run, same machine, same workload (no-op tasks, no payload) and the same
 * end-to-end definition: from the first enqueue call to the last committed completion, with
 * the workers already connected and idle before t0 (neither side is charged for start-up; give
 * the Pipewright run the same warm-up). One difference is by design, not by setup: graphile runs
 * its tasks inside the worker process that claims them, with no server hop in between.
 */
import { fork, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Logger, makeWorkerUtils, run, runMigrations, type AddJobsJobSpec } from "graphile-worker";

const VERSION: string = createRequire(import.meta.url)("graphile-worker/package.json").version;
// Chosen on a 2-core box with PostgreSQL on it (medians of 5-6 interleaved runs, 20k jobs):
// - concurrency 10, 24 and 50 were within noise of each other (about 15k jobs/s each, spread
//   +-2k); we keep 24, the value of graphile's performance doc.
// - 1 worker process beat 2 in every sweep (about 15.2k vs 14.2k): with PostgreSQL and the
//   enqueuer on the same 2 cores, a second worker process only adds contention.
// - addJobs batches of 1000-5000 were no faster than 500 end to end (CPU-bound, not round trips).
const DEFAULTS = { jobs: 20000, concurrency: 24, processes: 1, batch: 500, warmup: 2000 };
const LOCAL_QUEUE_SIZE = 500;

const { values: args } = parseArgs({
  options: {
    "database-url": { type: "string", default: process.env.DATABASE_URL },
    jobs: { type: "string", default: String(DEFAULTS.jobs) },
    concurrency: { type: "string", default: String(DEFAULTS.concurrency) },
    processes: { type: "string", default: String(DEFAULTS.processes) },
    batch: { type: "string", default: String(DEFAULTS.batch) },
    warmup: { type: "string", default: String(DEFAULTS.warmup) },
    schema: { type: "string", default: "graphile_worker" },
    json: { type: "boolean", default: false },
    worker: { type: "boolean", default: false }, // internal: run as a forked worker process
  },
});
const url = args["database-url"];
const schema = args.schema!;
const int = (name: "jobs" | "concurrency" | "processes" | "batch" | "warmup", min = 1): number => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const [jobs, concurrency, processes, batch, warmup] = [int("jobs"), int("concurrency"), int("processes"), int("batch"), int("warmup", 0)];
if (!url) throw new Error("--database-url (or DATABASE_URL) is required");
if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid --schema ${JSON.stringify(schema)}`);

// Warnings and errors only; graphile's default logger prints a line per worker start/stop.
// (LogLevel is an ambient const enum, which verbatimModuleSyntax cannot read: compare strings.)
const logger = new Logger(() => (level, message) => {
  if (["error", "warning"].includes(level)) console.error(`[graphile ${level}] ${message}`);
});
/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
const clock = () => performance.timeOrigin + performance.now();

type FromWorker = { type: "ready" } | { type: "progress"; done: number; firstStart: number };

async function workerMain(): Promise<void> {
  let done = 0;
  let firstStart = 0;
  const runner = await run({
    connectionString: url,
    schema,
    concurrency,
    maxPoolSize: concurrency + 1,
    noHandleSignals: true,
    logger,
    taskList: { noop: () => {} },
    preset: { worker: { localQueue: { size: LOCAL_QUEUE_SIZE }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  });
  runner.events.on("job:start", () => void (firstStart ||= clock()));
  runner.events.on("job:success", () => void done++);
  // Progress goes to the parent in small coalesced messages, not one per job.
  let sent = 0;
  const timer = setInterval(() => {
    if (done !== sent) process.send!({ type: "progress", done: (sent = done), firstStart } satisfies FromWorker);
  }, 2);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    await runner.stop(); // flushes the pending completion batch and releases the pool
    process.exit(0);
  };
  process.on("message", (m) => {
    if (m === "stop") return void stop();
    // After the warm-up round: count afresh, then say we are ready again.
    [done, sent, firstStart] = [0, 0, 0];
    process.send!({ type: "ready" } satisfies FromWorker);
  });
  process.on("disconnect", () => void stop()); // the parent died: do not linger
  process.send!({ type: "ready" } satisfies FromWorker);
}

async function parentMain(): Promise<void> {
  await runMigrations({ connectionString: url, schema, logger });
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
  const children: ChildProcess[] = [];
  let stopping = false;
  try {
    await utils.withPgClient((c) => c.query(`truncate ${schema}._private_jobs, ${schema}._private_job_queues`));

    // Start the workers and wait until every one is connected and idle.
    const done = new Array<number>(processes).fill(0);
    const firstStarts = new Array<number>(processes).fill(0);
    let onReady = () => {};
    let onProgress = () => {};
    const allReady = () => {
      let n = 0;
      return new Promise<void>((resolve) => (onReady = () => void (++n === processes && resolve())));
    };
    let failChild: (err: Error) => void = () => {};
    const childFailed = new Promise<never>((_, reject) => (failChild = reject));
    childFailed.catch(() => {}); // observed through the races below
    const started = allReady();
    for (let i = 0; i < processes; i++) {
      const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), "--worker"], {
        env: { ...process.env, NO_LOG_SUCCESS: "1" },
      });
      children.push(child);
      child.once("exit", (code) => stopping || failChild(new Error(`worker process ${i} exited early (code ${code})`)));
      child.on("message", (m: FromWorker) => {
        if (m.type === "ready") return onReady();
        done[i] = m.done;
        if (firstStarts[i] === 0) firstStarts[i] = m.firstStart;
        onProgress();
      });
    }
    await Promise.race([started, childFailed]);

    /** Enqueues n jobs and waits until the last completion is committed. */
    const round = async (n: number) => {
      done.fill(0);
      firstStarts.fill(0);
      const allRan = new Promise<void>((resolve) => {
        onProgress = () => void (done.reduce((x, y) => x + y, 0) >= n && resolve());
      });
      // Payloads are built before t0 so that only graphile's enqueue path is timed.
      const batches: AddJobsJobSpec[][] = [];
      for (let k = 0; k < n; k += batch) {
        batches.push(Array.from({ length: Math.min(batch, n - k) }, () => ({ identifier: "noop", payload: {} })));
      }
      const t0 = clock();
      for (const specs of batches) await utils.addJobs(specs);
      const tEnqueued = clock();
      // End detection: job:success fires in the worker just before the job is handed to the
      // completion batch, i.e. before its delete is committed. So the workers' success counts
      // (coalesced, via IPC; no database load) tell us when every job has run, and only then
      // do we poll the job table until it is empty: the moment the last completion was
      // committed. Polling the table all along would be exact too, but would add a
      // seq-scanning query stream competing for the same 2 cores.
      const timeoutMs = 60_000 + n;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`jobs not done after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([allRan, childFailed, timeout]);
        const count = `select count(*)::int as n from ${schema}._private_jobs`;
        while ((await utils.withPgClient((c) => c.query<{ n: number }>(count))).rows[0].n > 0) {
          await Promise.race([new Promise((r) => setTimeout(r, 1)), childFailed, timeout]);
        }
      } finally {
        clearTimeout(timer);
      }
      return { t0, tEnqueued, tEnd: clock(), firstStart: Math.min(...firstStarts.filter((t) => t > 0)) };
    };

    // Warm-up (untimed): JIT, prepared statements, plan and catalog caches. On a freshly
    // migrated schema the first round otherwise runs about 20% slower (11.9k vs 15.1k jobs/s);
    // with it, a new scratch database and a reused one read the same.
    if (warmup > 0) {
      await round(warmup);
      const reset = allReady();
      for (const child of children) child.send("reset");
      await Promise.race([reset, childFailed]);
    }
    const { t0, tEnqueued, tEnd, firstStart } = await round(jobs);

    const seconds = (tEnd - t0) / 1000;
    const result = {
      system: "graphile-worker",
      version: VERSION,
      jobs,
      seconds: Number(seconds.toFixed(3)),
      jobsPerSecond: Math.round(jobs / seconds),
      enqueuePerSecond: Math.round(jobs / ((tEnqueued - t0) / 1000)),
      executionPerSecond: Math.round(jobs / ((tEnd - firstStart) / 1000)),
      concurrency,
      processes,
      batch,
      warmup,
    };
    console.log(
      args.json
        ? JSON.stringify(result)
        : `graphile-worker ${VERSION}: ${jobs} jobs end to end in ${result.seconds} s = ${result.jobsPerSecond} jobs/s ` +
            `(enqueue ${result.enqueuePerSecond}/s, execution ${result.executionPerSecond}/s; ` +
            `${processes} process(es) x concurrency ${concurrency}, addJobs batches of ${batch}, warm-up ${warmup})`,
    );
  } finally {
    stopping = true;
    await Promise.all(children.map((child) => stopChild(child)));
    await utils.release();
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => resolve(clearTimeout(kill)));
    if (child.connected) child.send("stop");
    else child.kill("SIGTERM");
  });
}

await (args.worker ? workerMain() : parentMain());
