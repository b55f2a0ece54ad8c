// Fault tests with real processes: servers killed with SIGKILL (and once
// stopped cleanly) under load, worker processes killed and restarted. Every
// accepted run must finish, with the outcome the local runner gives; work may
// run twice (at-least-once: counted and reported), nothing may be lost or
// stuck. The report goes to the console and to .test-results/faults.json.

import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import type { Pipeline } from "../../client/pipeline-builder.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { mismatchesAgainstLocal } from "../support/compare-with-local.js";
import { buildPipeline, pipelineSpec } from "../support/random-pipelines.js";
import { outcomeOf } from "../support/run-outcome.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";
import {
  countDuplicates,
  finishRun,
  freePort,
  killProcess,
  mulberry32,
  newJournal,
  readJournal,
  removeJournal,
  resilient,
  startWorkerProcess,
} from "../support/fault-harness.js";
import { nap } from "../support/test-tasks.js";

const SEED = Number(process.env.PIPEWRIGHT_FAULT_SEED ?? Date.now() % 2 ** 31);
const random = mulberry32(SEED);

let db: TestDatabase;
let port: number;
let journal: string;
let server: ServerProcess | undefined;
const workers: ChildProcess[] = [];

const serverArgs = () => ["--address", `127.0.0.1:${port}`, "--process-timeout-ms", "3000", "--heartbeat-interval-ms", "500", "--drain-grace-ms", "1000"];

async function startServerProcess(): Promise<void> {
  server = await spawnServer(serverArgs(), { DATABASE_URL: db.url });
}

async function killServer(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
  const s = server!;
  s.child.kill(signal);
  await s.exited;
}

function startWorker(index: number): void {
  workers[index] = startWorkerProcess([`127.0.0.1:${port}`], journal);
}

async function killWorker(index: number): Promise<void> {
  await killProcess(workers[index]);
  startWorker(index);
}

const finish = (client: PipewrightClient, id: string) => finishRun(() => client, id);
const executions = () => readJournal(journal);

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  journal = newJournal();
  await startServerProcess();
  startWorker(0);
  startWorker(1);
});

afterAll(async () => {
  for (const w of workers) w?.kill("SIGKILL");
  if (server && server.child.exitCode === null) {
    server.child.kill("SIGKILL");
    await server.exited;
  }
  await db?.drop();
  removeJournal(journal);
});

describe(`crash recovery (seed ${SEED})`, () => {
  it("a run survives three server kill -9s during its execution and ends with the correct result", async () => {
    const client = new PipewrightClient(`127.0.0.1:${port}`);
    let p: Pipeline<number> = nap.send(60);
    for (let i = 1; i < 30; i++) p = p.continueWith(nap);
    const run = await resilient("submit", () => client.submit(p, { requestId: `three-kills-${SEED}` }));
    for (let k = 0; k < 3; k++) {
      await new Promise((r) => setTimeout(r, 300 + random() * 400));
      await killServer("SIGKILL");
      await startServerProcess();
    }
    const done = await finish(client, run.id);
    expect(RunState[done.state]).toBe("SUCCEEDED");
    expect(outcomeOf(done)).toMatchObject({ ok: true, value: 60 });
    const steps = (await resilient("get", () => client.run(run.id).get(true))).steps;
    expect(steps).toHaveLength(30);
    expect(steps.every((s) => s.state === 5)).toBe(true);
    client.close();
  });

  it("a workload of random pipelines (2,000+ tasks) survives server kills, a clean restart and worker kills: nothing lost, nothing stuck, same outcomes", async () => {
    const client = new PipewrightClient(`127.0.0.1:${port}`);
    const specs = fc.sample(pipelineSpec({ dags: true }), { numRuns: 300, seed: SEED });
    const pipelines = specs.map((s) => buildPipeline(s));
    const before = executions().length;
    const ids: string[] = new Array(pipelines.length);

    // Submit in batches while the faults happen; a batch cut off by a kill is resubmitted with the same request ids.
    const submitting = (async () => {
      for (let i = 0; i < pipelines.length; i += 25) {
        const batch = pipelines.slice(i, i + 25);
        const response = await resilient("submit batch", () =>
          client.rpc.batchSubmitRuns({ requests: batch.map((pl, j) => ({ requestId: `fault-${SEED}-${i + j}`, pipeline: pl.toProto() })) }),
        );
        response.responses.forEach((r, j) => (ids[i + j] = r.run!.id));
        await new Promise((r) => setTimeout(r, 40));
      }
    })();

    const faults: string[] = [];
    const plan: [string, () => Promise<void>][] = [
      [
        "server kill -9",
        async () => {
          await killServer("SIGKILL");
          await startServerProcess();
        },
      ],
      ["worker 0 kill -9", () => killWorker(0)],
      [
        "server kill -9",
        async () => {
          await killServer("SIGKILL");
          await startServerProcess();
        },
      ],
      [
        "server clean restart (SIGTERM) under load",
        async () => {
          await killServer("SIGTERM");
          await startServerProcess();
        },
      ],
      ["worker 1 kill -9", () => killWorker(1)],
      [
        "server kill -9",
        async () => {
          await killServer("SIGKILL");
          await startServerProcess();
        },
      ],
    ];
    for (const [name, fault] of plan) {
      await new Promise((r) => setTimeout(r, 250 + random() * 500));
      await fault();
      faults.push(name);
    }
    await submitting;

    const runs = await Promise.all(ids.map((id) => finish(client, id)));
    const stuck = runs.filter((r) => r.state < RunState.SUCCEEDED).length;
    const mismatches = await mismatchesAgainstLocal(runs, pipelines);
    const all = executions().slice(before);
    const { tries, duplicates } = countDuplicates(all);
    const report = {
      seed: SEED,
      runs: runs.length,
      taskExecutions: all.length,
      distinctTaskTries: tries,
      faults,
      serverKills: faults.filter((f) => f.startsWith("server kill")).length,
      workerKills: faults.filter((f) => f.startsWith("worker")).length,
      duplicates,
      lost: stuck,
      mismatches: mismatches.length,
    };
    mkdirSync(".test-results", { recursive: true });
    writeFileSync(".test-results/faults.json", JSON.stringify(report, null, 2));
    console.log(`fault report: ${JSON.stringify(report)}`);
    expect(report.distinctTaskTries).toBeGreaterThanOrEqual(2000);
    expect(stuck, "runs not finished").toBe(0);
    expect(mismatches, `seed ${SEED}\n${mismatches.slice(0, 3).join("\n")}`).toEqual([]);
    client.close();
  });
});
