// inTransaction: a finished transaction does not keep what its body captured.
// With plain sql.begin, postgres.js 3.4 keeps the first transaction of a
// process reachable for good (and a later one until its connection runs
// something else): in the server that was a committed batch of a
// 100,000-branch group, ~80 MB of rows, held for the whole run.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, inTransaction, type Sql } from "../../server/store/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const exec = promisify(execFile);
let db: TestDatabase;
let sql: Sql;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = connect(db.url, { max: 1 });
});
afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await db?.drop();
});

/** In a fresh process (postgres.js's caches empty): is the body's capture collectable after the transaction? */
async function collectedAfter(mode: "begin" | "inTransaction"): Promise<boolean> {
  const { stdout } = await exec(process.execPath, ["--import", "tsx", "test/support/first-transaction.ts", mode, db.url]);
  return JSON.parse(stdout.trim().split("\n").at(-1)!).collected;
}

describe("inTransaction", () => {
  it("lets go of what the body captured once the transaction is over", async () => {
    expect(await collectedAfter("inTransaction")).toBe(true);
  });

  it("(why it exists) after plain sql.begin the same capture is still reachable", async () => {
    expect(await collectedAfter("begin")).toBe(false);
  });

  it("commits what the body wrote, and rolls it back when the body throws", async () => {
    await sql`create table t_tx (n int)`;
    await inTransaction(sql, async (tx) => tx`insert into t_tx values (1)`);
    await expect(
      inTransaction(sql, async (tx) => {
        await tx`insert into t_tx values (2)`;
        throw new Error("no");
      }),
    ).rejects.toThrow("no");
    expect((await sql<{ n: number }[]>`select n from t_tx`).map((r) => r.n)).toEqual([1]);
  });
});
