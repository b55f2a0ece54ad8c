// The error types the server (and the SDKs, for their own failures) give
// errors they make. Every SDK and client compares against these names; they
// are part of the protocol (proto/PROTOCOL.md). Task code's own errors carry
// the names task code gives them.

export const ErrorTypes = {
  aggregate: "pipewright.AggregateError",
  cancelled: "pipewright.Cancelled",
  timeout: "pipewright.Timeout",
  limitExceeded: "pipewright.LimitExceeded",
  invalidPipeline: "pipewright.InvalidPipeline",
  workerLost: "pipewright.WorkerLost",
  circuitOpen: "pipewright.CircuitOpen",
  /** The server could not go on with the run (a bug, or a stored run it cannot rebuild); the message has a log reference. */
  internal: "pipewright.Internal",
  /** A worker's result that can never be stored or passed on (see the README's Limits). */
  invalidResult: "pipewright.InvalidResult",
  /** A worker was handed a task it does not have. */
  unknownTask: "pipewright.UnknownTask",
} as const;

export type ErrorTypeName = (typeof ErrorTypes)[keyof typeof ErrorTypes];

/** The version of the worker protocol this code speaks (Hello.protocol_version, Welcome.protocol_version). */
export const PROTOCOL_VERSION = 1;
