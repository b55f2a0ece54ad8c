// Helpers shared by the fault tests: free ports, worker processes that
// journal their executions, calls that ride out a restarting server, and a
// seeded PRNG for replayable fault schedules.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { PipewrightClient } from "../../client/client.js";
import type { Run } from "../../proto/gen/pipewright/v1/run_pb.js";

export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** A fresh journal file for worker executions. */
export function newJournal(): string {
  const dir = path.join(os.tmpdir(), `pipewright-faults-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `journal-${Date.now()}-${Math.floor(Math.random() * 1e6)}.jsonl`);
  writeFileSync(file, "");
  return file;
}

/** Removes a journal (and its folder once empty): test runs leave nothing behind in the temp folder. */
export function removeJournal(file: string | undefined): void {
  if (!file) return;
  rmSync(file, { force: true });
  try {
    rmdirSync(path.dirname(file)); // only if empty: another test file of this process may still use it
  } catch {
    /* not empty */
  }
}

/** A worker process (test/support/fault-worker.ts) serving the random-pipeline tasks. */
export function startWorkerProcess(addresses: string[], journal: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "test/support/fault-worker.ts"], {
    env: { ...process.env, PIPEWRIGHT_ADDRESS: addresses.join(","), FAULT_JOURNAL: journal, FAULT_WORK_MS: "3", FAULT_SLOTS: "8", ...env },
    stdio: "ignore",
  });
}

export async function killProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  await exited;
}

const TRANSIENT = new Set([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED, grpc.status.INTERNAL]);

/** Retries what a restarting server cannot answer right now. */
export async function resilient<T>(what: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!TRANSIENT.has((err as grpc.ServiceError).code) || Date.now() > until) throw new Error(`${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Waits for a run to finish, through server restarts. */
export function finishRun(client: () => PipewrightClient, id: string): Promise<Run> {
  return resilient(`waiting for run ${id}`, async () => {
    const r = await client().rpc.waitRun({ runId: id, timeout: { seconds: 5n, nanos: 0 } }, { deadline: Date.now() + 8000 });
    if (!r.done) throw Object.assign(new Error("not done yet"), { code: grpc.status.UNAVAILABLE });
    return r.run!;
  });
}

export interface Execution {
  run: string;
  step: number;
  retry: number;
  attempt: number;
  pid: number;
}

export function readJournal(file: string): Execution[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Executions beyond the first of the same try of the same step (at-least-once duplicates). */
export function countDuplicates(executions: Execution[]): { tries: number; duplicates: number } {
  const perTry = new Map<string, number>();
  for (const e of executions) perTry.set(`${e.run}/${e.step}/${e.retry}`, (perTry.get(`${e.run}/${e.step}/${e.retry}`) ?? 0) + 1);
  return { tries: perTry.size, duplicates: [...perTry.values()].reduce((n, c) => n + (c - 1), 0) };
}

/** A small seeded PRNG, so a failing fault schedule can be replayed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Crashes the PostgreSQL running on `dataDir` with SIGKILL: of the postmaster
 * alone ("postmaster": its backends, each in a session of its own, notice and
 * exit, some answering "terminating connection due to unexpected postmaster
 * exit"), or of the postmaster and every backend at once ("all", like a
 * machine or OOM kill). Resolves once all of them are gone; the next start
 * runs crash recovery.
 */
export async function crashPostgres(dataDir: string, what: "postmaster" | "all" = "all"): Promise<void> {
  const pid = Number(readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const children = childrenOf(pid);
  for (const p of what === "all" ? [pid, ...children] : [pid]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  while (![pid, ...children].every(gone)) await new Promise((r) => setTimeout(r, 10));
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
  } catch {
    return true;
  }
}
