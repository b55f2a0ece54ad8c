// The embedded PostgreSQL's data folder: who owns it (when we are root, the OS
// user "postgres", created if missing), the modes on the way to it, and its
// first initialisation (initdb).

import { execFile, spawn } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

// Authentication: initdb --auth=scram-sha-256 for both socket and TCP, with a fixed, well-known
// superuser password. The password is not a secret and protects nothing on a shared host; what
// keeps the server private is listen_addresses=127.0.0.1 and the socket living inside the
// 0700 data folder. We still use password auth rather than trust so that URLs look like the
// ones used against a real server (DATABASE_URL) and the driver's auth path is exercised.
export const SUPERUSER = "postgres";
export const PASSWORD = "pipewright";
const OS_USER = "postgres";

const execFileAsync = promisify(execFile);

export interface OsUser {
  uid: number;
  gid: number;
}

export interface Binaries {
  initdb: string;
  postgres: string;
}

export function childEnv(): NodeJS.ProcessEnv {
  // A small, explicit environment: PG* variables of the caller must not steer our server.
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C", ...(process.env.TZ ? { TZ: process.env.TZ } : {}) };
}

export function logFileOf(dataDir: string): string {
  return path.join(dataDir, "postgres.log");
}

/** The OS user postgres runs as: ourselves, or "postgres" (created if missing) when we are root. */
export async function postgresOsUser(log: (line: string) => void): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async (): Promise<OsUser> => {
    const [uid, gid] = await Promise.all([execFileAsync("id", ["-u", OS_USER]), execFileAsync("id", ["-g", OS_USER])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  };
  try {
    return await lookup();
  } catch {
    log(`running as root and no OS user "${OS_USER}" exists: creating it`);
    await execFileAsync("groupadd", ["--system", OS_USER]).catch(() => undefined);
    await execFileAsync("useradd", ["--system", "--gid", OS_USER, "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER]);
    return lookup();
  }
}

export async function prepareDataDir(dataDir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  if (user) {
    const st = await stat(dataDir);
    if (st.uid !== user.uid) await chown(dataDir, user.uid, user.gid);
  }
  await ensureTraversableBy(path.dirname(dataDir), user, log);
}

/**
 * Postgres runs as another OS user when we are root, and needs to walk down to its data folder
 * and its binaries. Where an ancestor folder denies that (typically /root, mode 0700), we add
 * the o+x bit: it lets others traverse, not list, the folder. That is the chosen trade-off
 * against alternatives such as moving the data folder or copying the binaries.
 */
export async function ensureTraversableBy(dir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
  if (!user) return;
  let current = await realpath(dir);
  for (;;) {
    const st = await stat(current);
    const traversable = (st.mode & 0o001) !== 0 || (st.uid === user.uid && (st.mode & 0o100) !== 0) || (st.gid === user.gid && (st.mode & 0o010) !== 0);
    if (!traversable) {
      await chmod(current, (st.mode & 0o7777) | 0o001);
      log(`added o+x to ${current} so that OS user "${OS_USER}" can reach the PostgreSQL files below it`);
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

export async function initdb(binaries: Binaries, dataDir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
  log(`initialising PostgreSQL data folder ${dataDir}`);
  // initdb reads the superuser password from a file, which the postgres OS user must be able to read.
  const pwDir = await mkdtemp(path.join(os.tmpdir(), "pipewright-initdb-"));
  const pwFile = path.join(pwDir, "password");
  try {
    await writeFile(pwFile, PASSWORD + "\n", { mode: 0o600 });
    if (user) {
      await chown(pwDir, user.uid, user.gid);
      await chown(pwFile, user.uid, user.gid);
    }
    const args = [
      `--pgdata=${dataDir}`,
      `--username=${SUPERUSER}`,
      `--pwfile=${pwFile}`,
      "--auth=scram-sha-256",
      // C collation with UTF-8: identical behaviour on every machine, whatever locales are installed.
      "--encoding=UTF8",
      "--no-locale",
    ];
    const output: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(binaries.initdb, args, { ...user, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
      const emit = (line: string) => {
        if (line.trim() === "") return;
        output.push(line);
        log(`initdb: ${line}`);
      };
      // initdb writes "doing X ... " and "ok" separately; log whole lines only.
      const lineReader = (stream: NodeJS.ReadableStream) => {
        let pending = "";
        stream.on("data", (chunk: Buffer) => {
          const lines = (pending + chunk.toString("utf8")).split("\n");
          pending = lines.pop() ?? "";
          lines.forEach(emit);
        });
        stream.on("end", () => emit(pending));
      };
      lineReader(child.stdout);
      lineReader(child.stderr);
      child.on("error", reject);
      child.on("close", resolve);
    });
    if (code !== 0) throw new Error(`initdb failed (exit code ${code}):\n${output.slice(-20).join("\n")}`);
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
}

export async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
