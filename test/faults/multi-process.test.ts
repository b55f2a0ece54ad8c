// Scale-out under fire: three server processes on one database, two worker
// processes that know all three addresses, a workload submitted to all three,
// and one server killed with SIGKILL mid-way. Its workers reconnect to the
// others, its attempts are re-queued, its runs are adopted by a survivor:
// every run finishes with the local runner's outcome, none is lost.

import type { ChildProcess } from "node:child_process";
import fc from "fast-check";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { mismatchesAgainstLocal } from "../support/compare-with-local.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import {
  countDuplicates,
  finishRun,
  freePort,
  killProcess,
  newJournal,
  readJournal,
  removeJournal,
  resilient,
  startWorkerProcess,
} from "../support/fault-harness.js";
import { buildPipeline, pipelineSpec } from "../support/random-pipelines.js";
import { spawnServer, type ServerProcess } from "../support/server-process.js";

const SEED = Number(process.env.PIPEWRIGHT_FAULT_SEED ?? Date.now() % 2 ** 31);
let db: TestDatabase;
let journal: string;
const servers: ServerProcess[] = [];
const addresses: string[] = [];
const workers: ChildProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  journal = newJournal();
  for (let i = 0; i < 3; i++) {
    // A free port can be taken by another test's process before the server binds it: then another.
    for (let attempt = 1; ; attempt++) {
      const address = `127.0.0.1:${await freePort()}`;
      try {
        servers.push(await spawnServer(["--address", address, "--process-timeout-ms", "2000", "--heartbeat-interval-ms", "500"], { DATABASE_URL: db.url }));
        addresses.push(address);
        break;
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
      }
    }
  }
  for (let i = 0; i < 2; i++) workers.push(startWorkerProcess(addresses, journal));
});

afterAll(async () => {
  for (const w of workers) await killProcess(w);
  for (const s of servers) await killProcess(s.child);
  await db?.drop();
  removeJournal(journal);
});

describe(`three server processes, one killed under load (seed ${SEED})`, () => {
  it("loses nothing: the survivors adopt the dead process's runs and finish every one correctly", async () => {
    const clients = addresses.map((a) => new PipewrightClient(a));
    const specs = fc.sample(pipelineSpec({ dags: true }), { numRuns: 150, seed: SEED });
    const pipelines = specs.map((s) => buildPipeline(s));
    const ids: string[] = [];
    // Submit to all three, a third each.
    for (let i = 0; i < pipelines.length; i += 15) {
      const via = clients[(i / 15) % 3];
      const response = await resilient("submit", () =>
        via.rpc.batchSubmitRuns({ requests: pipelines.slice(i, i + 15).map((p, j) => ({ requestId: `mp-${SEED}-${i + j}`, pipeline: p.toProto() })) }),
      );
      ids.push(...response.responses.map((r) => r.run!.id));
    }
    await new Promise((r) => setTimeout(r, 300));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const [{ id: victim }] = await sql<{ id: string }[]>`select id::text from server_processes where address like ${"%/" + addresses[1]}`;
    const victimsRuns = (await sql<{ uid: string }[]>`select uid::text from runs where owner_id = ${victim}::uuid and state <= 3`).map((r) => r.uid);
    const heldByVictim = victimsRuns.length;
    await killProcess(servers[1].child); // kill -9 the second server mid-way
    const survivors = [clients[0], clients[2]];
    const finishing = Promise.all(ids.map((id, i) => finishRun(() => survivors[i % 2], id)));
    // If something gets stuck, say what before the test times out.
    const diagnose = setTimeout(async () => {
      const stuck = await sql`select r.uid, r.state, r.owner_id, (select count(*) from task_queue q where q.run_id = r.id)::int as queued,
        (select count(*) from run_inbox i where i.run_id = r.id)::int as inbox from runs r where r.state <= 3 and r.uid = any(${ids}::uuid[])`;
      const processes = await sql`select id, address, now() - heartbeat_at as silence from server_processes`;
      console.log(
        `STUCK after 40 s: ${JSON.stringify(stuck)}\nprocesses: ${JSON.stringify(processes)}\n${servers.map((s) => s.output().split("\n").slice(-10).join("\n")).join("\n---\n")}`,
      );
    }, 40_000);
    const runs = await finishing;
    clearTimeout(diagnose);
    expect(runs.filter((r) => r.state < RunState.SUCCEEDED)).toHaveLength(0);
    const mismatches = await mismatchesAgainstLocal(runs, pipelines);
    expect(mismatches, `seed ${SEED}\n${mismatches.slice(0, 3).join("\n")}`).toEqual([]);
    // The victim held unfinished runs when it died; the survivors adopted every one of them.
    const owners = await sql<{ owner_id: string; state: number }[]>`select owner_id::text, state from runs where uid = any(${victimsRuns}::uuid[])`;
    expect(heldByVictim).toBeGreaterThan(0);
    // Every one it had not finished itself before the kill was adopted...
    expect(owners.filter((o) => o.owner_id === victim && o.state < RunState.SUCCEEDED)).toEqual([]);
    expect(owners.every((o) => o.state >= RunState.SUCCEEDED)).toBe(true); // ...and finished
    const { tries, duplicates } = countDuplicates(readJournal(journal));
    console.log(
      `multi-process fault report: ${JSON.stringify({ seed: SEED, runs: runs.length, tries, duplicates, lost: 0, activeRunsOfTheKilledProcess: heldByVictim })}`,
    );
    await sql.end();
    for (const c of clients) c.close();
  });
});
