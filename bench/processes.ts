// The benchmark's processes: PostgreSQL, server(s) and worker(s), each its own
// OS process as in production, and a sampler of their resident memory.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import postgres from "postgres";
import { startEmbeddedPostgres } from "../server/store/embedded-postgres.js";

// Shared with the fault tests (dev tooling both).
export { freePort } from "../test/support/fault-harness.js";

/** The benchmark's PostgreSQL server: DATABASE_URL's, or an embedded one in .pipewright/bench-pg (stopped by `stop`). */
export async function benchPostgres(): Promise<{ adminUrl: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, stop: async () => {} };
  const pg = await startEmbeddedPostgres({ dataDir: path.resolve(".pipewright/bench-pg") });
  return { adminUrl: pg.url, stop: () => pg.stop() };
}

/** A fresh database on the benchmark's PostgreSQL server. */
export async function freshDatabase(adminUrl: string, name: string): Promise<string> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists ${name} with (force)`);
  await sql.unsafe(`create database ${name}`);
  await sql.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface Proc {
  child: ChildProcess;
  stop(): Promise<void>;
}

function start(args: string[], env: Record<string, string>, readyLine: RegExp): Promise<Proc & { output: () => string }> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const check = () => readyLine.test(out) && resolve({ child, stop, output: () => out });
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited (${code}) before it was ready:\n${out}`)));
  });
}

export async function startServerProcess(databaseUrl: string, port: number, extra: string[] = []): Promise<Proc> {
  return start(["server/main.ts", "--address", `127.0.0.1:${port}`, ...extra], { DATABASE_URL: databaseUrl }, /pipewright listening on/);
}

export async function startWorkerProcess(addresses: string[], slots: number): Promise<Proc> {
  return start(["bench/bench-worker.ts"], { PIPEWRIGHT_ADDRESS: addresses.join(","), BENCH_SLOTS: String(slots) }, /bench worker ready/);
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc (Linux). Unlike wall
 * time, it hardly moves when other work shares the machine: the figure to compare code by on
 * these shared machines. Clock ticks are 1/100 s on Linux (getconf CLK_TCK), so take it over
 * seconds of work, not milliseconds.
 */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces), in parentheses: utime is the 14th field, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Samples the resident memory of processes every 100 ms; keeps the peak per process. */
export class RssSampler {
  private timer: NodeJS.Timeout;
  readonly peakBytes = new Map<number, number>();

  constructor(pids: number[]) {
    this.timer = setInterval(() => {
      for (const pid of pids) {
        try {
          const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
          if (m) this.peakBytes.set(pid, Math.max(this.peakBytes.get(pid) ?? 0, Number(m[1]) * 1024));
        } catch {
          /* the process ended */
        }
      }
    }, 100);
  }

  stop(): number {
    clearInterval(this.timer);
    return Math.max(0, ...this.peakBytes.values());
  }
}
