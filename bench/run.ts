// `npm run bench [-- --json] [--quick] [--only throughput,latency,...,history,waiting] [--no-metrics]`
//
// Runs Pipewright's benchmark on this machine, each scenario against a fresh
// cluster (database, server and worker processes), several times, and the
// same throughput workload on graphile-worker (the peer) against the same
// PostgreSQL server in the same run. Prints a table; writes one JSON document
// (bench/results/<time>.json, and stdout with --json): machine, versions, and
// per scenario every run and the median.

import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { promisify } from "node:util";
import postgres from "postgres";
import { benchPostgres, freshDatabase } from "./processes.js";
import { chain, fanout, latency, startCluster, throughput, type Cluster, type ClusterOptions } from "./scenarios.js";
import { history } from "./history.js";
import { waiting } from "./waiting.js";
import { median, round } from "./stats.js";

const exec = promisify(execFile);
const argv = process.argv.slice(2);
const json = argv.includes("--json");
const quick = argv.includes("--quick");
// Servers run with their metrics endpoint on, scraped every second (Prometheus's usual interval is
// 15-60 s): what production costs, counted in every figure. --no-metrics leaves the endpoint off.
const metrics = !argv.includes("--no-metrics");
const only = argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");
const log = (line: string) => (json ? process.stderr : process.stdout).write(line + "\n");

const N = quick
  ? { throughput: 4000, latency: 100, chain: 50, fan1: 2000, fan2: 20000, repeat: 1, peerRepeat: 1, history: 100_000, waiting: 10_000 }
  : { throughput: 20000, latency: 500, chain: 200, fan1: 10000, fan2: 100000, repeat: 3, peerRepeat: 3, history: 1_000_000, waiting: 100_000 };
const WORKER = { servers: 1, workers: 1, slots: 256 } satisfies ClusterOptions;

type Figures = Record<string, number>;
interface ScenarioResult {
  runs: Figures[];
  median: Figures;
  serverRssPeakMB: number;
}

async function main(): Promise<void> {
  const { adminUrl, stop: stopPg } = await benchPostgres();
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const [{ version: pgVersion }] = await sql<{ version: string }[]>`select version()`;
  const [{ fsync }] = await sql<{ fsync: string }[]>`show fsync`;
  await sql.end();

  const results: Record<string, ScenarioResult | Record<string, unknown>> = {};
  const want = (s: string) => !only || only.includes(s);

  async function scenario(name: string, options: ClusterOptions, repeat: number, run: (c: Cluster) => Promise<Figures>): Promise<ScenarioResult> {
    const runs: Figures[] = [];
    let rss = 0;
    for (let i = 0; i < repeat; i++) {
      const cluster = await startCluster(adminUrl, { ...options, metrics });
      try {
        runs.push(await run(cluster));
      } finally {
        rss = Math.max(rss, cluster.rss.stop());
        await cluster.stop();
      }
      log(`  ${name} #${i + 1}: ${JSON.stringify(runs.at(-1))}`);
    }
    const keys = Object.keys(runs[0]);
    const result = {
      runs,
      median: Object.fromEntries(keys.map((k) => [k, round(median(runs.map((r) => r[k])), 2)])),
      serverRssPeakMB: round(rss / 2 ** 20, 0),
    };
    results[name] = result;
    return result;
  }

  if (want("throughput")) await scenario("throughput", WORKER, N.repeat, (c) => throughput(c, N.throughput));
  if (want("latency")) await scenario("latency", WORKER, N.repeat, (c) => latency(c, N.latency));
  if (want("chain")) await scenario("chain", WORKER, N.repeat, (c) => chain(c, N.chain));
  if (want("fanout")) {
    const small = await scenario(`fanout_${N.fan1}`, WORKER, N.repeat, (c) => fanout(c, N.fan1));
    const big = await scenario(`fanout_${N.fan2}`, WORKER, quick ? 1 : 2, (c) => fanout(c, N.fan2));
    results.fanout_ratio = { ratio: round(big.median.seconds / small.median.seconds, 1), branches: [N.fan1, N.fan2] };
  }
  if (want("peer")) {
    const runs: Figures[] = [];
    for (let i = 0; i < N.peerRepeat; i++) {
      const db = await freshDatabase(adminUrl, `bench_graphile_${process.pid}_${i}`);
      const { stdout } = await exec(
        process.execPath,
        ["--import", "tsx", "bench/peer-graphile.ts", "--database-url", db, "--jobs", String(N.throughput), "--json"],
        { maxBuffer: 1 << 24 },
      );
      const r = JSON.parse(stdout.trim().split("\n").at(-1)!);
      runs.push({ jobsPerSecond: r.jobsPerSecond, seconds: r.seconds });
      log(`  peer graphile-worker #${i + 1}: ${JSON.stringify(runs.at(-1))}`);
    }
    results.peer = { system: "graphile-worker 0.17.3 (batched)", runs, median: { jobsPerSecond: median(runs.map((r) => r.jobsPerSecond)) } };
    const ours = results.throughput as ScenarioResult | undefined;
    if (ours) (results.peer as Record<string, unknown>).ratio = round(ours.median.tasksPerSecond / median(runs.map((r) => r.jobsPerSecond)), 2);
  }
  if (want("replicas")) {
    const single = await scenario("replicas_1", { servers: 1, workers: 2, slots: 128 }, N.repeat, (c) => throughput(c, N.throughput));
    const three = await scenario("replicas_3", { servers: 3, workers: 2, slots: 128 }, N.repeat, (c) => throughput(c, N.throughput));
    results.replicas_ratio = { ratio: round(three.median.tasksPerSecond / single.median.tasksPerSecond, 2) };
  }
  if (want("history")) {
    // The dashboard's runs page with N.history finished runs kept, beside the same page with 1,000.
    const few = await history(adminUrl, 1000, "few");
    log(`  history with ${few.runs} runs: ${JSON.stringify(few)}`);
    const many = await history(adminUrl, N.history, "many");
    log(`  history with ${many.runs} runs: ${JSON.stringify(many)}`);
    results.history = { few, many, ratio: round(many.pageLoadMs / few.pageLoadMs, 2) };
  }
  if (want("waiting")) {
    // N.waiting runs sleeping or waiting for a signal, parked, beside the same runs all held in memory.
    const parked = await waiting(adminUrl, N.waiting, true);
    log(`  waiting, parking on: ${JSON.stringify(parked)}`);
    const held = await waiting(adminUrl, N.waiting, false);
    log(`  waiting, parking off: ${JSON.stringify(held)}`);
    results.waiting = { parked, held, heapRatio: round(parked.heapBytesPerRun / Math.max(1, held.heapBytesPerRun), 3) };
  }
  await stopPg();

  const doc = {
    when: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGB: round(os.totalmem() / 2 ** 30, 1), kernel: os.release() },
    versions: { node: process.version, postgres: pgVersion.split(" ").slice(0, 2).join(" "), fsync },
    metrics: metrics ? "on, scraped every 1 s" : "off",
    sizes: N,
    scenarios: results,
  };
  mkdirSync("bench/results", { recursive: true });
  const file = `bench/results/${doc.when.replace(/[:.]/g, "-")}.json`;
  writeFileSync(file, JSON.stringify(doc, null, 2));
  if (json) console.log(JSON.stringify(doc));
  else {
    log(`\nmachine: ${doc.machine.cpus} cores, ${doc.machine.cpu}; ${doc.versions.postgres} (fsync ${fsync}); node ${process.version}`);
    for (const [name, r] of Object.entries(results)) {
      const { median: m, ratio } = r as { median?: unknown; ratio?: number };
      const extra = `${m && ratio !== undefined ? `  (Pipewright/peer ${ratio})` : ""}${"serverRssPeakMB" in r ? `  (server RSS peak ${r.serverRssPeakMB} MB)` : ""}`;
      log(`${name.padEnd(16)} ${JSON.stringify(m ?? r)}${extra}`);
    }
    log(`\nwritten to ${file}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
