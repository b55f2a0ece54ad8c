// Child process of test/store/transaction.test.ts: runs one transaction whose
// body captures a big object, in a process where postgres.js has run none
// yet, and prints whether the object could be collected afterwards.
// Usage: node --import tsx test/support/first-transaction.ts <begin|inTransaction> <database url>

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { connect, inTransaction, type Tx } from "../../server/store/database.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const [mode, url] = process.argv.slice(2);
const sql = connect(url, { max: 1 });
await sql`select 1`;

// Queries from a module-level function, as the engine makes them.
async function count(tx: Tx, n: number): Promise<void> {
  await tx`select ${n}::int as n`;
}

async function captured(): Promise<WeakRef<object>> {
  const big = { rows: new Array(100_000).fill(1) };
  const body = async (tx: Tx) => count(tx, big.rows.length);
  await (mode === "begin" ? sql.begin(body) : inTransaction(sql, body));
  return new WeakRef(big);
}

const ref = await captured();
await new Promise((r) => setTimeout(r, 0)); // a WeakRef keeps its target until the job that made it ends
gc();
console.log(JSON.stringify({ collected: ref.deref() === undefined }));
await sql.end({ timeout: 5 });
