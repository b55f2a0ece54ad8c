// The one place where errors become gRPC statuses. A PipewrightError carries
// its code and a message meant for the client; anything else is a bug or an
// outage: the client gets INTERNAL (or UNAVAILABLE for a database outage) with
// a reference, and the cause goes to the log, never to the client.

import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { ErrorStatus } from "../../proto/runtime/grpc-bridge.js";
import { PipewrightError, type ErrorCode } from "../core/errors.js";

const CODES: Record<ErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
};

/** Error codes of the postgres driver that mean "the database is not reachable right now". */
const CONNECTION_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "57P01", "57P03"]);

export function errorMapper(log: (line: string) => void) {
  return (err: unknown, method: string): ErrorStatus => {
    if (err instanceof PipewrightError) return { code: CODES[err.code], details: err.message };
    const ref = randomUUID().slice(0, 8);
    const code = (err as { code?: string }).code;
    log(`${method} failed [${ref}]: ${(err as Error)?.stack ?? String(err)}`);
    if (code && CONNECTION_ERRORS.has(code)) return { code: grpc.status.UNAVAILABLE, details: `database unavailable, retry later (ref ${ref})` };
    return { code: grpc.status.INTERNAL, details: `internal error (ref ${ref})` };
  };
}
