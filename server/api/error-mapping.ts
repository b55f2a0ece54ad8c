// The one place where errors become gRPC statuses. A PipewrightError carries
// its code and a message meant for the client; anything else is a bug or an
// outage: the client gets INTERNAL (or UNAVAILABLE for a database outage) with
// a reference, and the cause goes to the log, never to the client.

import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { RefusedMessageError, type ErrorStatus } from "@pipewright/protocol";
import { isUnavailable } from "../store/database-errors.js";
import { badRequestStatus } from "./status-details.js";
import { PipewrightError, type ErrorCode } from "../core/errors.js";
import type { Logger } from "../observe/logger.js";

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

/** Longest status message sent (it travels in a trailer; see status-details.ts). */
const MAX_DETAILS = 2048;

export function errorMapper(log: Logger) {
  return (err: unknown, method: string): ErrorStatus => {
    if (err instanceof PipewrightError) {
      const code = CODES[err.code];
      const details = err.message.length > MAX_DETAILS ? `${err.message.slice(0, MAX_DETAILS - 20)}… (message cut)` : err.message;
      if (!err.violations?.length) return { code, details };
      const metadata = new grpc.Metadata();
      metadata.set("grpc-status-details-bin", Buffer.from(badRequestStatus(code, details, err.violations)));
      return { code, details, metadata };
    }
    // A message refused before decoding (garbage, too deep, too big) is the peer's fault: its
    // status goes back, nothing is logged (a stack trace per garbage message would let anybody
    // fill the log cheaply).
    if (err instanceof RefusedMessageError) return err.refusal.status ?? errorMapper(log)(err.refusal.error, method);
    const ref = randomUUID().slice(0, 8);
    // The database being away is an incident the monitor already reports (warn); anything else is a bug.
    if (isUnavailable(err)) log.warn({ ref, method, err }, `${method} failed [${ref}]: database unavailable`);
    else log.error({ ref, method, err }, `${method} failed [${ref}]: internal error`);
    if (isUnavailable(err)) return { code: grpc.status.UNAVAILABLE, details: `database unavailable, retry later (ref ${ref})` };
    return { code: grpc.status.INTERNAL, details: `internal error (ref ${ref})` };
  };
}
