import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../server/store/embedded-postgres.js";

// These tests share one data folder of their own (not the global test server) and run in order:
// each step starts from the state the previous one left.
describe("startEmbeddedPostgres", () => {
  let folder: string;
  let dataDir: string;
  const handles: EmbeddedPostgres[] = [];

  const start = async (): Promise<EmbeddedPostgres> => {
    const pg = await startEmbeddedPostgres({ dataDir });
    handles.push(pg);
    return pg;
  };

  const query = async <T extends readonly object[]>(url: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      return await run(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  };

  const postmasterPid = (pgDataDir: string): number | undefined => {
    const file = path.join(pgDataDir, "postmaster.pid");
    return existsSync(file) ? Number.parseInt(readFileSync(file, "utf8").split("\n")[0], 10) : undefined;
  };

  beforeAll(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "pipewright-pg-test-"));
    dataDir = path.join(folder, "db");
  });

  afterAll(async () => {
    for (const pg of handles) await pg.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("initialises a data folder, answers queries and stops", async () => {
    const pg = await start();
    expect(pg.reused).toBe(false);
    expect(pg.url).toBe(`postgres://postgres:pipewright@127.0.0.1:${pg.port}/pipewright`);
    const [row] = await query(pg.url, (sql) => sql`select 1 as one, current_database() as db, current_setting('fsync') as fsync`);
    expect(row).toEqual({ one: 1, db: "pipewright", fsync: "on" });

    const pid = postmasterPid(dataDir)!;
    expect(pid).toBeGreaterThan(0);
    await pg.stop();
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(path.join(dataDir, "postmaster.pid"))).toBe(false);
    await pg.stop(); // idempotent
  });

  it("keeps data across a clean stop and start", async () => {
    const first = await start();
    await query(first.url, async (sql) => {
      await sql`create table kept (v text)`;
      return sql`insert into kept values (${"written before stop"})`;
    });
    await first.stop();

    const second = await start();
    expect(second.reused).toBe(false);
    const rows = await query(second.url, (sql) => sql`select v from kept`);
    expect(rows).toEqual([{ v: "written before stop" }]);
    await second.stop();
  });

  it("reuses a postmaster whose handle was forgotten", async () => {
    const first = await start();
    await query(first.url, (sql) => sql`insert into kept values (${"before the crash"})`);
    // No stop(): as if this process had lost track of the server.

    const second = await start();
    expect(second.reused).toBe(true);
    expect(second.port).toBe(first.port);
    const rows = await query(second.url, (sql) => sql`select v from kept order by v`);
    expect(rows.map((r) => r.v)).toEqual(["before the crash", "written before stop"]);

    const pid = postmasterPid(dataDir)!;
    await second.stop();
    expect(isAlive(pid)).toBe(false);
  });

  it("survives SIGKILL of the process that started it, and the next start adopts it", async () => {
    // A separate Node process starts the server, writes a row, and is killed with SIGKILL.
    const moduleUrl = new URL("../../server/store/embedded-postgres.ts", import.meta.url).href;
    const script = `
      import postgres from 'postgres';
      import { startEmbeddedPostgres } from ${JSON.stringify(moduleUrl)};
      const pg = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} });
      const sql = postgres(pg.url, { max: 1 });
      await sql\`insert into kept values ('from the killed process')\`;
      await sql.end();
      console.log(JSON.stringify({ port: pg.port }));
      setInterval(() => {}, 1000);
    `;
    const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("\n")) resolve(stdout.split("\n")[0]);
      });
      child.on("exit", (code) => reject(new Error(`child exited with ${code}: ${stderr}`)));
    });
    const { port } = JSON.parse(line) as { port: number };
    const exited = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGKILL");
    await exited;

    const pid = postmasterPid(dataDir)!;
    expect(isAlive(pid)).toBe(true);
    const adopted = await start();
    expect(adopted.reused).toBe(true);
    expect(adopted.port).toBe(port);
    const rows = await query(adopted.url, (sql) => sql`select count(*)::int as n from kept where v = ${"from the killed process"}`);
    expect(rows).toEqual([{ n: 1 }]);

    // Its parent is gone, so stop() must not rely on being the one to reap it.
    await adopted.stop();
    expect(isAlive(pid)).toBe(false);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}
