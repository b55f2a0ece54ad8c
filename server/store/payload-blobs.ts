// SQL for payload_blobs: big payloads stored once per run (see migration 000007).

import { byteaArray, type Sql, type Tx } from "./database.js";

export interface Blob {
  runId: number;
  hash: Uint8Array;
  data: Uint8Array;
}

/** Bytes per insert statement: one parameter must stay far below PostgreSQL's 1 GB. */
const BYTES_PER_STATEMENT = 64 * 1024 * 1024;

/** Stores blobs (those already there are kept as they are: same hash, same bytes). */
export async function insertBlobs(sql: Sql | Tx, blobs: Blob[]): Promise<void> {
  for (let i = 0; i < blobs.length;) {
    const chunk: Blob[] = [];
    let bytes = 0;
    while (i < blobs.length && (chunk.length === 0 || bytes + blobs[i].data.length <= BYTES_PER_STATEMENT)) {
      bytes += blobs[i].data.length;
      chunk.push(blobs[i++]);
    }
    await sql`
      insert into payload_blobs (run_id, hash, data)
      select * from unnest(${chunk.map((b) => b.runId)}::bigint[], ${byteaArray(
        sql,
        chunk.map((b) => b.hash),
      )}::bytea[], ${byteaArray(
        sql,
        chunk.map((b) => b.data),
      )}::bytea[])
      on conflict do nothing`;
  }
}

/** The blobs of a run with these hashes (missing ones are simply absent). */
export async function loadBlobs(sql: Sql, runId: number, hashes: Uint8Array[]): Promise<Blob[]> {
  if (hashes.length === 0) return [];
  const rows = await sql<{ hash: Uint8Array; data: Uint8Array }[]>`
    select hash, data from payload_blobs where run_id = ${runId} and hash = any(${byteaArray(sql, hashes)}::bytea[])`;
  return rows.map((r) => ({ runId, hash: r.hash, data: r.data }));
}
