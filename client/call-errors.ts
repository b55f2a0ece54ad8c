// What a failed call to the server looks like to a user of PipewrightClient:
// one error with a clear message, the gRPC status code and details kept
// (`code`, `details`), and a stack that starts in the user's code rather than
// in grpc-js (an unreachable server used to print 27 lines of grpc-js
// internals). `client.rpc` stays the raw gRPC client for whoever wants that.

import * as grpc from "@grpc/grpc-js";

/** A call the server refused or could not answer. */
export class CallError extends Error {
  /** The gRPC status code (grpc.status). */
  readonly code: grpc.status;
  /** The server's message. */
  readonly details: string;
  readonly metadata?: grpc.Metadata;

  constructor(message: string, e: { code: grpc.status; details: string; metadata?: grpc.Metadata }) {
    super(message);
    this.name = "CallError";
    this.code = e.code;
    this.details = e.details;
    this.metadata = e.metadata;
  }
}

/** The server could not be reached (not running, wrong address, network down). Retrying later may work. */
export class ServerUnavailableError extends CallError {
  constructor(address: string, e: { code: grpc.status; details: string; metadata?: grpc.Metadata }) {
    const why = e.details?.match(/connect (E[A-Z]+)/)?.[1] ?? e.details;
    super(`cannot reach the Pipewright server at ${address}${why ? ` (${why})` : ""}`, e);
    this.name = "ServerUnavailableError";
  }
}

/** The error a failed call becomes (anything that is not a gRPC status passes as it is). */
export function callError(err: unknown, address: string): unknown {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e?.code !== "number" || typeof e.details !== "string") return err;
  const status = { code: e.code, details: e.details, metadata: e.metadata };
  if (e.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED|connect|Name resolution/i.test(e.details))
    return new ServerUnavailableError(address, status);
  return new CallError(`${grpc.status[e.code]}: ${e.details}`, status);
}

/** The same client, each unary call's failure turned into a CallError (streams: their failure). */
export function withCallErrors<C extends object>(rpc: C, address: string): C {
  return new Proxy(rpc, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function" || key === "close") return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) return result.catch((err: unknown) => Promise.reject(callError(err, address)));
        if (result && typeof result === "object" && Symbol.asyncIterator in result) {
          return (async function* () {
            try {
              yield* result as AsyncIterable<unknown>;
            } catch (err) {
              throw callError(err, address);
            }
          })();
        }
        return result;
      };
    },
  });
}

/**
 * Calls `call`, trying again (up to 4 more times, 100 ms doubling) while the
 * server answers UNAVAILABLE: it was reached and said "retry later" (its
 * database is briefly away, a commit failed, it is shutting down). Only for
 * calls that are safe to repeat: submits carry a request id, so a repeated
 * one makes one run. A server that cannot be reached at all fails at once
 * (ServerUnavailableError).
 */
export async function retryLater<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0, delay = 100; ; attempt++, delay *= 2) {
    try {
      return await call();
    } catch (err) {
      const later = err instanceof CallError && !(err instanceof ServerUnavailableError) && err.code === grpc.status.UNAVAILABLE;
      if (!later || attempt >= 4) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
