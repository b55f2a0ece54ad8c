// The error a run ends with when the server cannot go on with it (a bug, a
// damaged log, a result that cannot be stored): the client sees a reference,
// the log holds the cause under it (level error, field `ref`).

import { randomUUID } from "node:crypto";
import type { TaskError } from "@pipewright/protocol";
import { serverError } from "../core/values.js";
import type { Logger } from "../observe/logger.js";

/** `fields`: what the line should carry besides ref and err (run_id, step). */
export function internalError(log: Logger, what: string, err: unknown, fields: Record<string, unknown> = {}): TaskError {
  const ref = randomUUID().slice(0, 8);
  log.error({ ...fields, ref, err }, `internal error ${what} [${ref}]`);
  return serverError("Internal", `the server could not go on with this run (ref ${ref}); it ended it`);
}
