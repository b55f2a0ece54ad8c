// The embedded PostgreSQL's server process (the postmaster): started on a
// free port, waited for until it accepts connections, found again when an
// earlier process left it running on the same data folder, and stopped.

import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { chown, open, readFile, rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import postgres from "postgres";
import { childEnv, logFileOf, PASSWORD, SUPERUSER, type Binaries, type OsUser } from "./embedded-data-folder.js";

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
// sun_path is 108 bytes on Linux; postgres refuses longer socket paths at startup.
const MAX_SOCKET_PATH = 107;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface StartedPostmaster {
  pid: number;
  logFile: string;
  exited(): boolean;
}

export async function spawnPostmaster(
  binaries: Binaries,
  dataDir: string,
  port: number,
  user: OsUser | undefined,
  log: (line: string) => void,
): Promise<StartedPostmaster> {
  const logFile = logFileOf(dataDir);
  const args = ["-D", dataDir, "-p", String(port), ...socketArgs(dataDir, port, log), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"];
  log(`starting postgres ${args.join(" ")}`);
  const fd = openSync(logFile, "a", 0o600);
  let child;
  try {
    if (user) await chown(logFile, user.uid, user.gid);
    // Detached, in its own session and with no pipes to us: the database outlives this process
    // (even SIGKILL), and the next start adopts it through postmaster.pid.
    child = spawn(binaries.postgres, args, { ...user, env: childEnv(), detached: true, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  let exited = false;
  let spawnError: Error | undefined;
  child.on("error", (err) => {
    exited = true;
    spawnError = err;
  });
  child.on("exit", () => {
    exited = true;
  });
  child.unref();
  if (child.pid === undefined) {
    await sleep(0);
    throw new Error(`could not start ${binaries.postgres}: ${spawnError?.message ?? "no pid"}`);
  }
  return { pid: child.pid, logFile, exited: () => exited };
}

function socketArgs(dataDir: string, port: number, log: (line: string) => void): string[] {
  // The unix socket sits in the data folder, private to the postgres OS user; nothing of ours
  // uses it (we connect over TCP), so when the path would be too long we simply go without.
  if (path.join(dataDir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH) return ["-k", dataDir];
  log(`data folder path too long for a unix socket; listening on TCP only`);
  return ["-k", ""];
}

export async function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("could not pick a free port"))));
    });
  });
}

/**
 * Connects until the server answers, then creates the database if missing. Polling the real
 * thing covers crash recovery after an unclean stop, which can take a while.
 */
export async function waitUntilReady(port: number, database: string, postmaster: { pid: number; logFile: string; exited?: () => boolean }): Promise<void> {
  const sql = postgres({
    host: "127.0.0.1",
    port,
    user: SUPERUSER,
    password: PASSWORD,
    database: "postgres",
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    for (;;) {
      if (postmaster.exited?.() || !isRunning(postmaster.pid)) {
        throw new Error(`postgres (pid ${postmaster.pid}) exited during startup; log tail:\n${await logTail(postmaster.logFile)}`);
      }
      try {
        await sql`select 1`;
        break;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() > deadline) {
        const reason = lastError instanceof Error ? lastError.message : String(lastError);
        throw new Error(`postgres on port ${port} not ready after ${READY_TIMEOUT_MS / 1000} s (${reason}); log tail:\n${await logTail(postmaster.logFile)}`);
      }
      await sleep(100);
    }
    const [found] = await sql`select 1 from pg_database where datname = ${database}`;
    if (!found) {
      try {
        await sql`create database ${sql(database)}`;
      } catch (err) {
        // 42P04 duplicate_database: another process created it between our check and now.
        if ((err as { code?: string }).code !== "42P04") throw err;
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export interface RunningPostmaster {
  pid: number;
  port: number;
}

/**
 * Reads postmaster.pid (line 1 pid, line 4 port, line 8 status). A stale file from a dead
 * postmaster is left for postgres itself to replace; one naming a live process that is not
 * postgres (pid reused after a reboot) would make postgres refuse to start, so it goes.
 */
export async function findRunningPostmaster(dataDir: string, log: (line: string) => void): Promise<RunningPostmaster | undefined> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  let lines: string[];
  try {
    lines = (await readFile(pidFile, "utf8")).split("\n");
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(lines[0] ?? "", 10);
  const port = Number.parseInt(lines[3] ?? "", 10);
  if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return undefined;
  if (!isPostgresProcess(pid)) {
    log(`removing ${pidFile}: pid ${pid} is alive but is not postgres`);
    await rm(pidFile, { force: true });
    return undefined;
  }
  if ((lines[7] ?? "").trim() === "stopping") {
    log(`postmaster pid ${pid} is shutting down; waiting for it before starting afresh`);
    if (!(await waitForExit(pid, STOP_TIMEOUT_MS))) throw new Error(`postmaster pid ${pid} in ${dataDir} did not finish stopping`);
    return undefined;
  }
  if (!Number.isInteger(port) || port <= 0) throw new Error(`cannot read the port of running postmaster pid ${pid} from ${pidFile}`);
  return { pid, port };
}

export async function stopPostmaster(pid: number): Promise<void> {
  if (!isRunning(pid)) return;
  // SIGINT is postgres's "fast" shutdown: roll back open transactions, checkpoint, exit.
  signal(pid, "SIGINT");
  if (await waitForExit(pid, STOP_TIMEOUT_MS)) return;
  signal(pid, "SIGKILL");
  if (!(await waitForExit(pid, 5_000))) throw new Error(`postmaster pid ${pid} survived SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * kill(pid, 0) alone is not enough: a postmaster whose parent died is re-parented, and an init
 * that does not reap (as in some containers and microVMs) leaves it a zombie forever.
 */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

function isPostgresProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "postgres";
  } catch {
    return true; // no procfs: trust the pid file
  }
}

export async function logTail(logFile: string, lines = 20): Promise<string> {
  // The log is appended to across restarts, so read only its end.
  const file = await open(logFile, "r").catch(() => undefined);
  if (!file) return `(no log at ${logFile})`;
  try {
    const { size } = await file.stat();
    const length = Math.min(size, 16 * 1024);
    const { buffer, bytesRead } = await file.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString("utf8", 0, bytesRead).trimEnd().split("\n").slice(-lines).join("\n");
  } finally {
    await file.close();
  }
}
