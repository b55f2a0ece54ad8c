// The connection pool. Bigint ids are read as JavaScript numbers: identity
// values stay far below 2^53 and numbers are cheaper to carry around.

import postgres from "postgres";

export type Sql = postgres.Sql<{ bigint: number }>;
export type Tx = postgres.TransactionSql<{ bigint: number }>;

export interface ConnectOptions {
  /** Pool size. */
  max?: number;
}

/**
 * Delay in seconds before a closed connection of the pool connects again.
 * postgres.js 3.4.9 reconnects on demand, `backoff(retries)` after the close,
 * `retries` counting failed connections of the whole pool (reset by the first
 * that gets ready). Its default, (0.5..1) x min(3^retries / 100, 20) s, is
 * 20 s after 7 failures, which a busy pool passes within a second of a crash:
 * measured after a PostgreSQL kill -9 under a query every 10 ms (5 loops of
 * `select 1`), the first query succeeded 0.4-0.5 s after a 1.7 s outage but
 * 8.8 s after a 5.2 s one, and queries waited up to 4 s to fail. With this
 * (100-150 ms, x1.05 per failure, at most 1 s): 0.04-0.06 s and 0.001 s,
 * failing in 0.07-0.26 s (median). Each try against a dead local server is a
 * refused connect, microseconds.
 */
export function reconnectDelay(retries: number): number {
  return Math.min(1, 0.1 * 1.05 ** retries * (1 + Math.random() / 2));
}

export function connect(url: string, options: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    backoff: reconnectDelay,
    // Seconds a connect may take before it fails (default 30): a dead server
    // that drops packets instead of refusing fails each try within 2 s (a
    // healthy local connect with SCRAM auth: 6 ms median, 11 ms at most in 20).
    connect_timeout: 2,
    // int8 as number (ids, counts); see the header comment.
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (v: number) => String(v),
        parse: (v: string) => Number(v),
      },
    },
    connection: { application_name: "pipewright" },
  }) as unknown as Sql;
}

/** A fragment of SQL, composed into a statement by the caller (the batch statement composes many). */
export type Fragment = postgres.PendingQuery<postgres.Row[]>;

/**
 * A code (a status, a state) written into the SQL as the constant itself, not
 * as a parameter: a partial index (`where status = 0`) serves only a query
 * that says its constant.
 */
export function code(sql: Sql | Tx, value: number): Fragment {
  if (!Number.isInteger(value)) throw new Error(`not a code: ${value}`);
  return sql.unsafe(String(value));
}

/** Milliseconds since the epoch, in a column of a JSON parameter, as a timestamptz. */
export function msToTimestamp(sql: Sql | Tx, column: string): Fragment {
  return sql.unsafe(`to_timestamp(${column} / 1000.0)`);
}

/** Bytes as base64 for a JSON parameter (null stays null: SQL's decode gives null). */
export function base64(u: Uint8Array | null | undefined): string | null {
  return u && u.length ? Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("base64") : null;
}

/** Binds an array of byte strings as bytea[] (for unnest). */
export function byteaArray(sql: Sql | Tx, values: Uint8Array[]): postgres.Parameter {
  return sql.array(values.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)) as never, 1001 as never) as never;
}

/**
 * `sql.begin(body)`, without letting the finished transaction keep `body`
 * (and all it captured) alive. postgres.js 3.4 keeps a finished transaction's
 * scope reachable: the first one of the process for good, and (seen in the
 * server's heap) others until their connection runs something else. With the
 * commit of a 100,000-branch group that held ~80 MB of rows for the whole
 * run. Only `held` is captured, and cleared once the transaction is over
 * (test/store/transaction.test.ts).
 */
export async function inTransaction<T>(sql: Sql, body: (tx: Tx) => Promise<T>): Promise<T> {
  let held: ((tx: Tx) => Promise<T>) | undefined = body;
  try {
    return (await sql.begin((tx) => held!(tx))) as T;
  } finally {
    held = undefined;
  }
}
