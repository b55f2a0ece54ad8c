// What the server process does with a promise rejection nobody handled.
//
// postgres.js 3.4.9 starts a query of its own on every new connection (the
// array types, `fetch_types`) and drops its promise: when PostgreSQL dies
// while that query runs, which a reconnect during a crash loop makes likely,
// the connection error surfaces as an unhandled rejection, and Node's default
// ends the process (porsager/postgres#1192, #1205, #1223, all open). No code of
// ours can catch it, and nothing is lost by carrying on: the driver reconnects,
// and the array types were registered by the first connection at start (they
// are shared by the pool). So a rejection that says "the database is not
// reachable now" is logged and the server goes on.
//
// Any other unhandled rejection is a bug of ours: it is logged with its stack
// and the process exits, as Node would, since its state is no longer known. No
// accepted work is lost (it is all in PostgreSQL); a supervisor restarts it.

import { isUnavailable } from "../store/database-errors.js";
import type { Logger } from "../observe/logger.js";

/** Why the driver's dropped promise is let go, for the log line. */
export const DROPPED_DRIVER_ERROR = "porsager/postgres#1192";

/** Installs the handler once per process; returns a function that removes it. */
export function guardProcess(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  const onRejection = (reason: unknown) => {
    if (isUnavailable(reason)) {
      log.warn(
        { err: reason, known_issue: DROPPED_DRIVER_ERROR },
        `a database error nobody waited for (the driver's own query on a lost connection): carrying on`,
      );
      return;
    }
    log.fatal({ err: reason }, `unhandled promise rejection, exiting: ${(reason as Error | null)?.message ?? String(reason)}`);
    exit(1);
  };
  process.on("unhandledRejection", onRejection);
  return () => process.off("unhandledRejection", onRejection);
}
