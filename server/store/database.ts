// The connection pool. Bigint ids are read as JavaScript numbers: identity
// values stay far below 2^53 and numbers are cheaper to carry around.

import postgres from "postgres";

export type Sql = postgres.Sql<{ bigint: number }>;
export type Tx = postgres.TransactionSql<{ bigint: number }>;

export interface ConnectOptions {
  /** Pool size. */
  max?: number;
  /** Called on connection-level errors and notices worth logging. */
  log?: (line: string) => void;
}

export function connect(url: string, options: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
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
