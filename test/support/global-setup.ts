import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../server/store/embedded-postgres.js";
import { migrate } from "../../server/store/migrate.js";

/**
 * Starts (or, with DATABASE_URL, borrows) one PostgreSQL server for the whole run and prepares
 * a migrated template database; each test file copies it with createTestDatabase().
 *
 * The helpers of ./database.ts are not imported here: that module imports `inject` from
 * vitest, which belongs to the test workers, not to this main process.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let server: EmbeddedPostgres | undefined;
  let folder: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    folder = await mkdtemp(path.join(os.tmpdir(), "pipewright-test-"));
    server = await startEmbeddedPostgres({ dataDir: path.join(folder, "db"), database: "postgres" });
    adminUrl = server.url;
  }

  const template = `pipewright_template_${randomBytes(8).toString("hex")}`;
  try {
    await admin(adminUrl, async (sql) => {
      await sql`drop database if exists ${sql(template)} with (force)`;
      await sql`create database ${sql(template)}`;
    });
    const templateUrl = new URL(adminUrl);
    templateUrl.pathname = `/${template}`;
    // Closed before any test copies it: CREATE DATABASE ... TEMPLATE refuses a template in use.
    const sql = postgres(templateUrl.toString(), { max: 1, onnotice: () => {} });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } catch (err) {
    await teardown(adminUrl, template, server, folder);
    throw err;
  }

  project.provide("databaseUrl", adminUrl);
  project.provide("templateDatabase", template);
  return () => teardown(adminUrl, template, server, folder);
}

async function teardown(adminUrl: string, template: string, server: EmbeddedPostgres | undefined, folder: string | undefined): Promise<void> {
  try {
    // With an embedded server the whole folder goes anyway; on a shared server, clean up after us.
    if (!server) await admin(adminUrl, (sql) => sql`drop database if exists ${sql(template)} with (force)`);
  } finally {
    await server?.stop();
    if (folder) await rm(folder, { recursive: true, force: true });
  }
}

async function admin(url: string, use: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await use(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
