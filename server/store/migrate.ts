import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Sql } from "postgres";

// One fixed advisory-lock key for every Pipewright process on a database, so that servers
// starting together apply each migration once. Advisory locks are per database, so servers on
// different databases never wait for each other. Bound as text and cast, because the driver's
// types do not admit bigint parameters.
const LOCK_KEY = "7308254173962331392";

const MIGRATION_FILE = /^(\d{6})-([a-z0-9][a-z0-9_-]*)\.sql$/;

interface Migration {
  id: number;
  name: string;
  file: string;
  path: string;
}

/** Applies the migrations shipped in ./migrations/ next to this module. */
export async function migrate(sql: Sql): Promise<{ applied: string[] }> {
  return migrateFrom(sql, new URL("./migrations/", import.meta.url));
}

/**
 * Applies, in id order, every migration in `folder` not yet recorded in pipewright_migrations,
 * each in its own transaction together with its record, so a failing file leaves no trace.
 * Returns the file names it applied (an empty list when the database was up to date).
 *
 * A migration file runs as one simple-protocol query, so it may hold several statements, but
 * not transaction control or statements that refuse to run in a transaction (CREATE INDEX
 * CONCURRENTLY, ALTER TYPE ... ADD VALUE before PostgreSQL 12, VACUUM).
 */
export async function migrateFrom(sql: Sql, folder: URL | string): Promise<{ applied: string[] }> {
  const migrations = await readMigrations(folder);

  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_KEY}::bigint)`;
    // Checked first rather than "create table if not exists", which emits a notice each start.
    const [{ exists }] = await tx`select to_regclass('pipewright_migrations') is not null as exists`;
    if (!exists) {
      await tx`
        create table pipewright_migrations (
          id integer primary key,
          name text not null,
          applied_at timestamptz not null default now()
        )`;
    }
  });

  const recorded = new Map<number, string>();
  for (const row of await sql<{ id: number; name: string }[]>`select id, name from pipewright_migrations`) {
    recorded.set(row.id, row.name);
  }
  const known = new Set(migrations.map((m) => m.id));
  const unknown = [...recorded.keys()].filter((id) => !known.has(id)).sort((a, b) => a - b);
  if (unknown.length > 0) {
    // The database was migrated by a newer build; running older code against it is not safe.
    throw new Error(`database has migrations this build does not know: ${unknown.map((id) => `${pad(id)}-${recorded.get(id)}`).join(", ")}`);
  }

  const applied: string[] = [];
  for (const migration of migrations) {
    if (recorded.has(migration.id)) {
      checkName(migration, recorded.get(migration.id)!);
      continue;
    }
    const text = await readFile(migration.path, "utf8");
    const didApply = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${LOCK_KEY}::bigint)`;
      // Re-read under the lock: another process may have applied it since we looked.
      const [row] = await tx<{ name: string }[]>`select name from pipewright_migrations where id = ${migration.id}`;
      if (row) {
        checkName(migration, row.name);
        return false;
      }
      try {
        await tx.unsafe(text);
      } catch (err) {
        throw new Error(`migration ${migration.file} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      await tx`insert into pipewright_migrations (id, name) values (${migration.id}, ${migration.name})`;
      return true;
    });
    if (didApply) applied.push(migration.file);
  }
  return { applied };
}

async function readMigrations(folder: URL | string): Promise<Migration[]> {
  const dir = typeof folder === "string" ? folder : fileURLToPath(folder);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    // git keeps no empty folders: no folder means no migrations yet.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const migrations: Migration[] = [];
  for (const file of entries) {
    if (!file.endsWith(".sql")) continue;
    const match = MIGRATION_FILE.exec(file);
    if (!match) throw new Error(`migration file name ${JSON.stringify(file)} in ${dir} is not NNNNNN-short-name.sql`);
    migrations.push({ id: Number(match[1]), name: match[2], file, path: path.join(dir, file) });
  }
  migrations.sort((a, b) => a.id - b.id);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].id === migrations[i - 1].id) {
      throw new Error(`two migrations share id ${pad(migrations[i].id)}: ${migrations[i - 1].file} and ${migrations[i].file}`);
    }
  }
  return migrations;
}

function checkName(migration: Migration, recordedName: string): void {
  // Migrations are immutable once committed; a different name under the same id means a rename
  // or a clash between branches, and either way the schema may not be what the code expects.
  if (recordedName !== migration.name) {
    throw new Error(`migration ${pad(migration.id)} is recorded as "${recordedName}" but the file is ${migration.file}`);
  }
}

function pad(id: number): string {
  return String(id).padStart(6, "0");
}
