// The benchmark's scenarios. Each runs against a fresh cluster (a new
// database, server and worker processes) and returns its figures.

import { PipewrightClient } from "../client/client.js";
import { inParallel, type Pipeline } from "../client/pipeline-builder.js";
import { RunState } from "../proto/gen/pipewright/v1/run_pb.js";
import { one, inc, noop, sum } from "./bench-worker.js";
import { cpuMs, freePort, freshDatabase, RssSampler, startServerProcess, startWorkerProcess, type Proc } from "./processes.js";
import { median, percentile, round } from "./stats.js";

export interface ClusterOptions {
  servers: number;
  workers: number;
  slots: number;
}

export interface Cluster {
  addresses: string[];
  clients: PipewrightClient[];
  rss: RssSampler;
  /** CPU ms the server processes have used so far, together. */
  serverCpuMs(): number;
  stop(): Promise<void>;
}

let counter = 0;

export async function startCluster(adminUrl: string, o: ClusterOptions): Promise<Cluster> {
  const db = await freshDatabase(adminUrl, `bench_${process.pid}_${++counter}`);
  const servers: Proc[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < o.servers; i++) {
    const port = await freePort();
    servers.push(await startServerProcess(db, port, ["--pool-size", "10"]));
    addresses.push(`127.0.0.1:${port}`);
  }
  const workers: Proc[] = [];
  for (let i = 0; i < o.workers; i++) workers.push(await startWorkerProcess(addresses, o.slots));
  await new Promise((r) => setTimeout(r, 300)); // workers connected
  const clients = addresses.map((a) => new PipewrightClient(a));
  const rss = new RssSampler(servers.map((s) => s.child.pid!));
  return {
    addresses,
    clients,
    rss,
    serverCpuMs: () => servers.reduce((sum, s) => sum + cpuMs(s.child.pid!), 0),
    async stop() {
      rss.stop();
      for (const c of clients) c.close();
      for (const w of workers) await w.stop();
      for (const s of servers) await s.stop();
    },
  };
}

async function check(runs: { state: RunState }[], what: string): Promise<void> {
  const bad = runs.filter((r) => r.state !== RunState.SUCCEEDED).length;
  if (bad) throw new Error(`${what}: ${bad} runs did not succeed`);
}

/**
 * Many single-task no-op pipelines, submitted in batches; end to end: first
 * submit to last result seen by the client. An untimed warm-up round first,
 * as the peer benchmark does.
 */
export async function throughput(
  c: Cluster,
  n: number,
  batch = 500,
  warmup = 2000,
): Promise<{ tasksPerSecond: number; seconds: number; serverCpuMsPer1kTasks: number }> {
  if (warmup) await throughput(c, warmup, batch, 0);
  const pipeline = noop.send();
  const cpu0 = c.serverCpuMs();
  const ids: string[] = [];
  const t0 = performance.now();
  const batches: number[] = [];
  for (let i = 0; i < n; i += batch) batches.push(i);
  // A few batches in flight at once, spread over the servers.
  let next = 0;
  const waiting: Promise<unknown>[] = [];
  const lane = async (lane: number) => {
    for (let b = next++; b < batches.length; b = next++) {
      const client = c.clients[(lane + b) % c.clients.length];
      const size = Math.min(batch, n - batches[b]);
      const handles = await client.submitMany(Array.from({ length: size }, () => pipeline));
      const batchIds = handles.map((h) => h.id);
      ids.push(...batchIds);
      waiting.push(client.waitAll(batchIds).then((runs) => check(runs, "throughput")));
    }
  };
  await Promise.all([0, 1, 2, 3].map(lane));
  await Promise.all(waiting);
  const seconds = (performance.now() - t0) / 1000;
  return { tasksPerSecond: round(n / seconds, 0), seconds: round(seconds, 2), serverCpuMsPer1kTasks: round(((c.serverCpuMs() - cpu0) / n) * 1000, 0) };
}

/** One single-task pipeline at a time: submit to result observed by the client. */
export async function latency(c: Cluster, n: number): Promise<{ p50: number; p95: number; p99: number }> {
  const client = c.clients[0];
  const ms: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t0 = performance.now();
    await client.submitAndWait(noop.send());
    if (i >= 20) ms.push(performance.now() - t0); // the first 20 warm up
  }
  return { p50: round(percentile(ms, 50)), p95: round(percentile(ms, 95)), p99: round(percentile(ms, 99)) };
}

/** A continuation chain: ms per step. An untimed short chain first warms the fresh server up. */
export async function chain(c: Cluster, steps: number, warmup = 20): Promise<{ msPerStep: number }> {
  if (warmup) await chain(c, Math.min(warmup, steps), 0);
  let p: Pipeline<number> = one.send();
  for (let i = 1; i < steps; i++) p = p.continueWith(inc);
  const t0 = performance.now();
  const result = await c.clients[0].submitAndWait(p);
  if (result !== steps) throw new Error(`chain: got ${result}, expected ${steps}`);
  return { msPerStep: round((performance.now() - t0) / steps) };
}

/**
 * One group of n no-op branches, then a task summing the list. An untimed
 * group of 1,000 first warms the fresh server up (the JIT: a cold process
 * spends ~0.2 s more decoding, checking and compiling its first big pipeline).
 */
export async function fanout(c: Cluster, n: number, warmup = 1000): Promise<{ seconds: number }> {
  if (warmup) await fanout(c, Math.min(warmup, n), 0);
  const p = inParallel(Array.from({ length: n }, () => one.send())).continueWith(sum);
  const t0 = performance.now();
  const result = await c.clients[0].submitAndWait(p);
  if (result !== n) throw new Error(`fanout: got ${result}, expected ${n}`);
  return { seconds: round((performance.now() - t0) / 1000, 2) };
}

export { median };
