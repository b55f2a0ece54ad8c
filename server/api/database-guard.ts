// Answers UNAVAILABLE at once while the database is unreachable, instead of
// letting a call wait for a connection (a submit hung for over 15 s through a
// 1.5 s PostgreSQL restart). Every RunService call needs the database, reads
// included; a call that started before the outage keeps waiting as it was.

import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@pipewright/protocol";
import { PipewrightError } from "../core/errors.js";

export interface DatabaseState {
  readonly up: boolean;
  /** Looks again now; resolves with `up` (see DatabaseMonitor.recheck). */
  recheck(): Promise<boolean>;
}

/**
 * The same handlers, each refusing to start while the database is down. A
 * call arriving while it looks down first has it looked at again (a probe,
 * or the one in flight; at most 500 ms): without that, calls made right after
 * PostgreSQL came back were refused until the next periodic probe.
 * @example
 *   implement(RunService, guardDatabase(runService(engine, sql, limits), monitor), onError)
 */
export function guardDatabase<S extends DescService>(impl: ServiceImpl<S>, database: DatabaseState): ServiceImpl<S> {
  const guarded: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(impl as Record<string, (...args: unknown[]) => unknown>)) {
    guarded[name] = (...args: unknown[]) => {
      if (database.up) return handler.apply(impl, args);
      return database.recheck().then((up) => {
        if (!up) throw new PipewrightError("UNAVAILABLE", "the database is unreachable; retry later");
        return handler.apply(impl, args);
      });
    };
  }
  return guarded as ServiceImpl<S>;
}
