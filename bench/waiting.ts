// Runs that wait (issue 16, item 7): N runs at once, half sleeping ten minutes
// and half waiting for a signal, with no worker connected at all. Measured on
// a real server process: its resident memory once they all wait, its CPU
// while they wait, and how fast a waiting run answers a signal. The peer in
// the same run is the same server with parking off (--park-waits-over-ms 0):
// every waiting run held in memory.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import postgres from "postgres";
import { PipewrightClient } from "../client/client.js";
import { sleep, waitForSignal } from "../client/pipeline-builder.js";
import { taskRef } from "../client/task-ref.js";
import { cpuMs, freePort, freshDatabase, startServerProcess } from "./processes.js";
import { median, percentile, round } from "./stats.js";

export interface WaitingFigures {
  runs: number;
  parking: boolean;
  submitSeconds: number;
  /** Server resident memory once every run waits (parked ones parked), MB. */
  serverRssMB: number;
  /** Server resident memory before the runs were submitted, MB. */
  serverRssIdleMB: number;
  /**
   * The heap the waiting runs hold, after garbage collection, bytes per run (bench/waiting-heap.ts:
   * the same runs on a server in a process run with --expose-gc). The server process's own heap
   * figure counts garbage not yet collected (V8 collects lazily with gigabytes free), and its RSS
   * keeps what the heap once took.
   */
  heapBytesPerRun: number;
  /** Runs the server held in memory once they all waited (bench/waiting-heap.ts). */
  heldInMemory: number;
  /** Server CPU over 10 s before the runs were submitted (its periodic sweeps), ms per second: the floor of cpuMsPerSecondWaiting. */
  cpuMsPerSecondIdle: number;
  /** Runs parked (out of memory) once settled. */
  parkedRuns: number;
  /** Server CPU over 10 s while every run waits, ms per second. */
  cpuMsPerSecondWaiting: number;
  /** From SignalRun to a waiting run until WaitRun sees it end (its only step is the wait), median and p95 of 200, ms. */
  signalToEndP50Ms: number;
  signalToEndP95Ms: number;
}

const SIGNALLED = 200;
const exec = promisify(execFile);
const stamp = taskRef<[x: unknown], unknown>("stamp");

/** Submits `runs` waiting runs to a fresh server and measures it while they wait. */
export async function waiting(adminUrl: string, runs: number, parking: boolean): Promise<WaitingFigures> {
  const db = await freshDatabase(adminUrl, `bench_waiting_${parking ? "parked" : "held"}_${process.pid}`);
  const port = await freePort();
  const server = await startServerProcess(db, port, ["--park-waits-over-ms", parking ? "30000" : "0"]);

  const pid = server.child.pid!;
  const sql = postgres(db, { max: 1, onnotice: () => {} });
  const client = new PipewrightClient(`127.0.0.1:${port}`);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const rssIdle = rssBytes(pid);
    const idle0 = cpuMs(pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const cpuIdle = (cpuMs(pid) - idle0) / 10;
    const started = performance.now();
    const signalled: string[] = [];
    for (let i = 0; i < runs; i += 1000) {
      const n = Math.min(1000, runs - i);
      const pipelines = Array.from({ length: n }, (_, k) => ((i + k) % 2 ? sleep(600_000).continueWith(stamp) : waitForSignal("go")));
      const handles = await client.submitMany(pipelines);
      if (signalled.length < SIGNALLED)
        for (const h of handles.filter((_, k) => (i + k) % 2 === 0).slice(0, SIGNALLED - signalled.length)) signalled.push(h.id);
    }
    const submitSeconds = (performance.now() - started) / 1000;
    // Settled: every run parked (parking on), or the server quiet for a while (off).
    for (const until = Date.now() + 120_000; Date.now() < until;) {
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from runs where parked`;
      if (!parking || n >= runs) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 3000));
    const [{ parked }] = await sql<{ parked: number }[]>`select count(*)::int as parked from runs where parked`;
    const rss = rssBytes(pid);
    const cpu0 = cpuMs(pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const cpuPerSecond = (cpuMs(pid) - cpu0) / 10;
    const latencies: number[] = [];
    for (const id of signalled) {
      const t = performance.now();
      await client.run(id).signal("go", 1);
      await client.run(id).wait(30_000);
      latencies.push(performance.now() - t);
    }
    return {
      runs,
      parking,
      submitSeconds: round(submitSeconds, 1),
      serverRssMB: round(rss / 2 ** 20, 0),
      serverRssIdleMB: round(rssIdle / 2 ** 20, 0),
      ...(await heapAfterGc(adminUrl, runs, parking)),
      cpuMsPerSecondIdle: round(cpuIdle, 1),
      parkedRuns: parked,
      cpuMsPerSecondWaiting: round(cpuPerSecond, 1),
      signalToEndP50Ms: round(median(latencies), 1),
      signalToEndP95Ms: round(percentile(latencies, 95), 1),
    };
  } finally {
    client.close();
    await sql.end();
    await server.stop();
  }
}

async function heapAfterGc(adminUrl: string, runs: number, parking: boolean): Promise<{ heapBytesPerRun: number; heldInMemory: number }> {
  const db = await freshDatabase(adminUrl, `bench_waiting_heap_${parking ? "parked" : "held"}_${process.pid}`);
  const args = ["--expose-gc", "--import", "tsx", "bench/waiting-heap.ts", "--database-url", db, "--runs", String(runs), ...(parking ? ["--parking"] : [])];
  const { stdout } = await exec(process.execPath, args, { maxBuffer: 1 << 24 });
  const r = JSON.parse(stdout.trim().split("\n").at(-1)!);
  return { heapBytesPerRun: r.bytesPerRun, heldInMemory: r.heldInMemory };
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}
