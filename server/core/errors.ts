// The one error class the server's layers throw to reach a client. Its code
// names a gRPC status; server/api/error-mapping.ts turns it into one and turns
// anything else into INTERNAL with a generic message (the cause is logged).

import { formatViolations, type Violation } from "@pipewright/protocol";

export type ErrorCode =
  "INVALID_ARGUMENT" | "NOT_FOUND" | "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "RESOURCE_EXHAUSTED" | "UNIMPLEMENTED" | "UNAVAILABLE" | "DEADLINE_EXCEEDED";

export class PipewrightError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Every problem of a bad request (its message names the first ones); sent as google.rpc.BadRequest details. */
    readonly violations?: readonly Violation[],
  ) {
    super(message);
    this.name = "PipewrightError";
  }
}

/** INVALID_ARGUMENT for a request with these problems. */
export function invalidRequest(violations: readonly Violation[]): PipewrightError {
  return new PipewrightError("INVALID_ARGUMENT", `invalid request: ${formatViolations(violations)}`, violations);
}
