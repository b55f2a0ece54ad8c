import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migrateFrom } from "../../server/store/migrate.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The test database is a copy of the template, which already carries the real migrations and
// their records. Each test therefore works in a schema of its own (first on the search_path),
// where pipewright_migrations and the tables below start out absent.
const SCHEMA = "migrate_test";

describe("migrateFrom", () => {
  let db: TestDatabase;
  let folder: string;
  const clients: postgres.Sql[] = [];

  const connect = async (): Promise<postgres.Sql> => {
    const sql = postgres(db.url, { max: 2, onnotice: () => {}, connection: { search_path: SCHEMA } });
    clients.push(sql);
    return sql;
  };
  const write = (file: string, text: string) => writeFile(path.join(folder, file), text);

  beforeEach(async () => {
    db = await createTestDatabase();
    const admin = await connect();
    await admin`create schema ${admin(SCHEMA)}`;
    folder = await mkdtemp(path.join(os.tmpdir(), "pipewright-migrations-"));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((sql) => sql.end({ timeout: 5 })));
    await db.drop();
    await rm(folder, { recursive: true, force: true });
  });

  it("applies migrations in id order, records them, and applies nothing the second time", async () => {
    const sql = await connect();
    // Written out of order, and with a file that is not a migration.
    await write("000003-third.sql", `insert into steps (name) values ('third');`);
    await write("000001-first.sql", `create table steps (seq serial primary key, name text not null);\ninsert into steps (name) values ('first');`);
    await write("000002-second.sql", `insert into steps (name) values ('second');`);
    await write("README.md", "not a migration");

    expect(await migrateFrom(sql, folder)).toEqual({ applied: ["000001-first.sql", "000002-second.sql", "000003-third.sql"] });
    expect((await sql`select name from steps order by seq`).map((r) => r.name)).toEqual(["first", "second", "third"]);
    const recorded = await sql`select id, name, applied_at from pipewright_migrations order by id`;
    expect(recorded.map((r) => [r.id, r.name])).toEqual([
      [1, "first"],
      [2, "second"],
      [3, "third"],
    ]);
    expect(recorded.every((r) => r.applied_at instanceof Date)).toBe(true);

    expect(await migrateFrom(sql, folder)).toEqual({ applied: [] });
    expect(await sql`select count(*)::int as n from steps`).toEqual([{ n: 3 }]);

    await write("000004-fourth.sql", `insert into steps (name) values ('fourth');`);
    expect(await migrateFrom(sql, new URL(`file://${folder}/`))).toEqual({ applied: ["000004-fourth.sql"] });
  });

  it("works with an empty or missing folder", async () => {
    const sql = await connect();
    expect(await migrateFrom(sql, folder)).toEqual({ applied: [] });
    expect(await migrateFrom(sql, path.join(folder, "absent"))).toEqual({ applied: [] });
    expect(await sql`select count(*)::int as n from pipewright_migrations`).toEqual([{ n: 0 }]);
  });

  it("rolls back a failing migration and does not record it", async () => {
    const sql = await connect();
    await write("000001-ok.sql", `create table kept (v int);`);
    await write("000002-broken.sql", `create table half_done (v int);\ninsert into kept values (1);\nselect 1 / 0;`);

    await expect(migrateFrom(sql, folder)).rejects.toThrow(/migration 000002-broken\.sql failed: division by zero/);
    expect((await sql`select id from pipewright_migrations`).map((r) => r.id)).toEqual([1]);
    expect(await sql`select to_regclass('half_done') as t`).toEqual([{ t: null }]);
    expect(await sql`select count(*)::int as n from kept`).toEqual([{ n: 0 }]);

    // Fixed (it was never applied anywhere), it goes through on the next start.
    await write("000002-broken.sql", `create table half_done (v int);\ninsert into kept values (1);`);
    expect(await migrateFrom(sql, folder)).toEqual({ applied: ["000002-broken.sql"] });
  });

  it("applies each migration exactly once when several processes start together", async () => {
    const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
    await write("000001-create.sql", `create table runs (id int not null);`);
    for (let id = 2; id <= 6; id++) {
      // The sleep widens the window in which the other runners could apply it too.
      await write(`00000${id}-step.sql`, `select pg_sleep(0.05);\ninsert into runs values (${id});`);
    }

    const results = await Promise.all([a, b, c].map((sql) => migrateFrom(sql, folder)));

    const all = results.flatMap((r) => r.applied).sort();
    expect(all).toEqual(["000001-create.sql", "000002-step.sql", "000003-step.sql", "000004-step.sql", "000005-step.sql", "000006-step.sql"]);
    expect((await a`select id from runs order by id`).map((r) => r.id)).toEqual([2, 3, 4, 5, 6]);
    expect(await a`select count(*)::int as n from pipewright_migrations`).toEqual([{ n: 6 }]);
  });

  it("refuses bad file names and duplicate ids", async () => {
    const sql = await connect();
    await write("1-too-short.sql", "select 1;");
    await expect(migrateFrom(sql, folder)).rejects.toThrow(/is not NNNNNN-short-name\.sql/);
    await rm(path.join(folder, "1-too-short.sql"));

    await write("000001-one.sql", "select 1;");
    await write("000001-other.sql", "select 1;");
    await expect(migrateFrom(sql, folder)).rejects.toThrow(/two migrations share id 000001/);
  });

  it("refuses a database migrated by a newer build, or a renamed migration", async () => {
    const sql = await connect();
    await write("000001-one.sql", "select 1;");
    await write("000002-two.sql", "select 1;");
    await migrateFrom(sql, folder);

    await rm(path.join(folder, "000002-two.sql"));
    await expect(migrateFrom(sql, folder)).rejects.toThrow(/does not know: 000002-two/);

    await write("000002-renamed.sql", "select 1;");
    await expect(migrateFrom(sql, folder)).rejects.toThrow(/recorded as "two" but the file is 000002-renamed\.sql/);
  });
});
