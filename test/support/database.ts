import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin connection URL of the test server (embedded, or DATABASE_URL). */
    databaseUrl: string;
    /** Name of the migrated template database that createTestDatabase() copies. */
    templateDatabase: string;
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

const DATABASE_NAME = /^[a-z0-9_]+$/;

/**
 * A fresh, migrated database of its own: a copy of the template made by the global setup.
 * Copying is a file-level operation, much faster than running the migrations again.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject("databaseUrl");
  const template = inject("templateDatabase");
  const name = `t_${randomBytes(8).toString("hex")}`;
  await withAdmin(adminUrl, async (sql) => {
    await sql`create database ${sql(validName(name))} template ${sql(validName(template))}`;
  });
  return {
    url: databaseUrl(adminUrl, name),
    name,
    drop: () => dropDatabase(adminUrl, name),
  };
}

/** Drops a database even while clients (say, a server under test that was never closed) hold connections. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, async (sql) => {
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`;
    // WITH (FORCE) also covers a client that connects between the two statements.
    await sql`drop database if exists ${sql(validName(name))} with (force)`;
  });
}

/** The same server and credentials as `adminUrl`, another database. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${validName(name)}`;
  return url.toString();
}

async function withAdmin<T>(adminUrl: string, use: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    return await use(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function validName(name: string): string {
  if (!DATABASE_NAME.test(name)) throw new Error(`invalid database name ${JSON.stringify(name)}`);
  return name;
}
