// The claim loop (server/dispatch/claim-loop.ts), driven directly: real
// PostgreSQL, real worker streams, rows written by hand. Claims are counted
// as the statements the dispatcher's pool sends; a claim is kept running by
// holding a lock on the queue table in another transaction.

import { afterEach, describe, expect, inject, it } from "vitest";
import { encodeValue } from "../../proto/runtime/values.js";
import type { Sql } from "../../server/store/database.js";
import { startDispatchHarness, type DispatchHarness } from "../support/dispatch-harness.js";
import { PgProxy } from "../support/pg-proxy.js";
import { until } from "../support/until.js";

let h: DispatchHarness | undefined;
let proxy: PgProxy | undefined;
afterEach(async () => {
  await h?.stop();
  await proxy?.close();
  h = proxy = undefined;
});

/** Holds an ACCESS EXCLUSIVE lock on task_queue until released: every claim waits for it. */
async function lockQueue(sql: Sql): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const tx = sql.begin(async (tx) => {
    await tx`lock table task_queue in access exclusive mode`;
    locked();
    await released;
  });
  await isLocked;
  return {
    async release() {
      release();
      await tx;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rows of `task` still waiting in the queue (status 0). */
async function ready(sql: Sql, task: string): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from task_queue where task = ${task} and status = 0`;
  return n;
}

describe("the claim loop", () => {
  it("several pokes while a claim runs coalesce into exactly one more claim", async () => {
    h = await startDispatchHarness();
    await h.enqueue({ task: "t" });
    const w = h.worker(["t"], 2);
    await w.waitForAssignments(1); // the claim made when it connected is over
    expect(h.claims()).toBe(1);

    const lock = await lockQueue(h.sql);
    h.dispatcher.poke();
    await until("a claim is under way", () => h!.claims() === 2);
    for (let i = 0; i < 5; i++) h.dispatcher.poke();
    await sleep(150);
    expect(h.claims(), "no second claim while one runs").toBe(2);

    await lock.release();
    await until("one more claim after the running one", () => h!.claims() === 3);
    await sleep(300);
    expect(h.claims(), "the five pokes made one claim, not five").toBe(3);
  });

  it("pokeAt wakes the loop at the time given, not before; an earlier time replaces a later one, a later one is ignored", async () => {
    h = await startDispatchHarness();
    const w = h.worker(["later"], 1);
    await h.sessionId();
    await until("the claim made when it connected", () => h!.claims() === 1);
    const due = Date.now() + 1000;
    await h.enqueue({ task: "later", availableAt: due });

    h.dispatcher.pokeAt(due + 3000);
    h.dispatcher.pokeAt(due);
    h.dispatcher.pokeAt(due + 5000);
    await sleep(due - 150 - Date.now());
    expect(h.claims(), "no claim before the time given").toBe(1);
    expect(w.assignments).toHaveLength(0);

    await until("the delayed row was handed out", () => w.assignments.length === 1, 3000);
    const arrived = Date.now();
    expect(arrived).toBeGreaterThanOrEqual(due);
    expect(arrived - due).toBeLessThan(500);
    expect(h.claims(), "one wake-up, one claim").toBe(2);
  });

  it("claims only the tasks and queues a session serves, never more than its free slots (held and reserved ones count)", async () => {
    h = await startDispatchHarness();
    await h.enqueue(
      { task: "a", queue: "q1" },
      { task: "a", queue: "q1" },
      { task: "b", queue: "q2" },
      { task: "b", queue: "q2" },
      { task: "c", queue: "q1" }, // a task it does not serve
      { task: "a", queue: "q3" }, // a queue it does not serve
      { task: "a" }, // the default queue, which it does not serve either
    );
    const w = h.worker(["a", "b"], 3, ["q1", "q2"]);
    await w.waitForAssignments(3);
    await sleep(200);
    expect(w.assignments.map((a) => a.task).sort()).toEqual(["a", "a", "b"]);
    expect(await ready(h.sql, "b")).toBe(1); // no slot left for it
    expect(h.dispatcher.reserve("b", "q2"), "no free slot to reserve either").toBeUndefined();

    // A result frees one slot: the next claim takes exactly one row.
    w.result(w.assignments[0].key!, encodeValue(1));
    await w.waitForAssignments(4);
    await sleep(200);
    expect(w.assignments).toHaveLength(4);
    expect(w.assignments[3].task).toBe("b");

    // One slot free but reserved for the engine's fast path: claims leave it alone until it is released.
    w.result(w.assignments[1].key!, encodeValue(1));
    await until("the result was taken", () => h!.recorded.results.length === 2);
    await sleep(200); // the claim it caused found nothing
    const reservation = h.dispatcher.reserve("a", "q1");
    expect(reservation).toBeDefined();
    await h.enqueue({ task: "a", queue: "q1" });
    h.dispatcher.poke();
    await sleep(300);
    expect(w.assignments, "the reserved slot was not claimed for").toHaveLength(4);
    h.dispatcher.release(reservation!); // released: the loop claims for it
    await w.waitForAssignments(5);
    expect(w.assignments[4].task).toBe("a");

    expect(w.assignments.map((a) => a.task).filter((t) => t !== "a" && t !== "b")).toEqual([]);
    expect(await ready(h.sql, "c")).toBe(1);
    const [{ n }] = await h.sql<{ n: number }[]>`select count(*)::int as n from task_queue where task = 'a' and queue in ('q3', '') and status = 0`;
    expect(n).toBe(2);
  });

  it("a claim whose answer was lost is undone by its token, and the attempt then reaches the worker", async () => {
    const url = new URL(inject("databaseUrl"));
    proxy = await PgProxy.start({ host: url.hostname, port: Number(url.port) });
    h = await startDispatchHarness({ dispatcherUrl: (u) => proxy!.url(u) });
    const [row] = await h.enqueue({ task: "doubt" });
    const lost = proxy.loseAnswer("with picked as", "UPDATE 1");
    const w = h.worker(["doubt"], 1);
    const sessionId = await h.sessionId();
    await lost;
    await until("the claim failed", () => h!.log.some((l) => l.startsWith("claiming tasks:")));

    // PostgreSQL committed the claim: the row is held for the worker, which never got it.
    const [held] = await h.sql<
      { status: number; worker_id: string; attempt: number }[]
    >`select status, worker_id, attempt from task_queue where run_id = ${row.runId}`;
    expect(held).toEqual({ status: 1, worker_id: sessionId, attempt: 1 });
    expect(w.assignments).toHaveLength(0);

    h.dispatcher.poke();
    const [a] = await w.waitForAssignments(1, 5000);
    expect(a.key).toMatchObject({ runId: row.runUid, stepId: row.step, attempt: 2 });
    expect(h.log).toContain(`1 attempts claimed for worker ${sessionId} as the database went away were put back (the claim's answer was lost)`);
  });
});
