// The one error class the server's layers throw to reach a client. Its code
// names a gRPC status; server/api/error-mapping.ts turns it into one and turns
// anything else into INTERNAL with a generic message (the cause is logged).

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "UNIMPLEMENTED"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED";

export class PipewrightError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PipewrightError";
  }
}
