// The error a run ends with when the server cannot go on with it (a bug, a
// damaged log, a result that cannot be stored): the client sees a reference,
// the log holds the cause under it.

import { randomUUID } from "node:crypto";
import type { TaskError } from "@pipewright/protocol";
import { serverError } from "../core/values.js";

export function internalError(log: (line: string) => void, what: string, err: unknown): TaskError {
  const ref = randomUUID().slice(0, 8);
  log(`internal error ${what} [${ref}]: ${(err as Error)?.stack ?? String(err)}`);
  return serverError("Internal", `the server could not go on with this run (ref ${ref}); it ended it`);
}
