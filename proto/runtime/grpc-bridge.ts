/**
 * Glue between protobuf-es v2 descriptors and grpc-js, server half: a service
 * definition built from a generated `GenService` and typed async handlers (the
 * client half is grpc-client.ts, what both share grpc-codec.ts).
 *
 * Client-streaming methods are not supported (the contract has none): they are
 * typed `never` and rejected at runtime by `implement` and `createClient`.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";
import { decodeInSlices } from "./decode-in-slices.js";
import { DECODE_OPTIONS, decoder, encoder, methodPath, rawBytes, receivedBytes, type Rpc } from "./grpc-codec.js";

/** A gRPC status to answer with: what `onError` returns. A `grpc.ServiceError` fits. */
export interface ErrorStatus {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata;
}

/** Maps an error thrown by a handler to a gRPC status. `method` is e.g. "pipewright.v1.RunService/GetRun". */
export type ErrorMapper = (err: unknown, method: string) => ErrorStatus;

/** The async handler for one method, derived from its descriptor. */
export type MethodImpl<M> =
  M extends Rpc<"unary", infer I, infer O>
    ? (request: MessageShape<I>, call: grpc.ServerUnaryCall<MessageShape<I>, MessageShape<O>>) => Promise<MessageShape<O>>
    : M extends Rpc<"server_streaming", infer I, infer O>
      ? (request: MessageShape<I>, call: grpc.ServerWritableStream<MessageShape<I>, MessageShape<O>>) => Promise<void>
      : M extends Rpc<"bidi_streaming", infer I, infer O>
        ? (call: grpc.ServerDuplexStream<MessageShape<I>, MessageShape<O>>) => Promise<void> | void
        : never;

/** Server handlers for every method of `S`, keyed by the method's localName (e.g. `submitRun`). */
export type ServiceImpl<S extends DescService> = { [K in keyof S["method"]]: MethodImpl<S["method"][K]> };

/**
 * What a server does with a request's bytes before decoding them. It may
 * throw (the request is refused: the error goes through the ErrorMapper),
 * give other bytes to decode instead (`bytes`), ask for the request to be
 * decoded in slices that let other work run in between (`inSlices`: big
 * requests of unary methods), and give a function to call once the call's
 * handler is done with the request (`release`: memory it accounted for).
 */
export type Inspector = (bytes: Uint8Array) => { bytes?: Uint8Array; release?: () => void; inSlices?: boolean } | void;

/** A request to decode in slices before its handler runs (see Inspector). */
const DEFERRED = Symbol("deferred request");
interface Deferred {
  [DEFERRED]: { schema: DescMessage; bytes: Uint8Array; release?: () => void };
}

/** Decodes a deferred request (or returns the request as it is); a malformed one becomes a refusal. */
async function undefer(request: unknown): Promise<unknown> {
  const d = (request as Partial<Deferred> | null)?.[DEFERRED];
  if (!d) return request;
  try {
    const message = await decodeInSlices(d.schema, d.bytes, DECODE_OPTIONS);
    rawBytes.set(message, d.bytes);
    if (d.release) releases.set(message, d.release);
    return message;
  } catch (error) {
    d.release?.();
    const details = `malformed request: not a valid ${d.schema.typeName}: ${(error as Error).message}`.slice(0, 1000);
    return { [REFUSED]: { status: { code: grpc.status.INVALID_ARGUMENT, details } } } satisfies Refusal;
  }
}

/** A request the server will not decode: what its handler gets instead of the message. */
const REFUSED = Symbol("refused request");
interface Refusal {
  [REFUSED]: { error?: unknown; status?: ErrorStatus };
}
const releases = new WeakMap<object, () => void>();

/** The refusal a decoded request stands for, if it is one (see `Inspector`). */
export function refusalOf(message: unknown): { error?: unknown; status?: ErrorStatus } | undefined {
  return (message as Partial<Refusal> | null)?.[REFUSED];
}

/** Decoding on the server: inspection first, and never a throw (grpc-js would answer INTERNAL "Error deserializing request"). */
const inspectingDecoder = (schema: DescMessage, inspect: Inspector | undefined) => (b: Buffer) => {
  let inspected: ReturnType<Inspector>;
  try {
    inspected = inspect?.(b);
  } catch (error) {
    return { [REFUSED]: { error } } satisfies Refusal;
  }
  const bytes = inspected?.bytes ?? b;
  if (inspected?.inSlices) return { [DEFERRED]: { schema, bytes, release: inspected.release } } satisfies Deferred;
  try {
    const message = fromBinary(schema, bytes, DECODE_OPTIONS);
    rawBytes.set(message, bytes);
    if (inspected?.release) releases.set(message, inspected.release);
    return message;
  } catch (error) {
    inspected?.release?.();
    const details = `malformed request: not a valid ${schema.typeName}: ${(error as Error).message}`.slice(0, 1000);
    return { [REFUSED]: { status: { code: grpc.status.INVALID_ARGUMENT, details } } } satisfies Refusal;
  }
};

/** Done with a request: gives back what its inspection accounted for. */
function released(request: unknown): void {
  const release = typeof request === "object" && request ? releases.get(request) : undefined;
  if (release) {
    releases.delete(request as object);
    release();
  }
}

/**
 * Builds the grpc-js service definition of a protobuf-es service. `inspect`
 * gives, per method (by localName), what a request's bytes go through before
 * they are decoded (see `Inspector`); a request that fails it, or fails to
 * decode, reaches the handler as a refusal (`implement` answers it).
 * @example server.addService(serviceDefinition(RunService), implementation)
 */
export function serviceDefinition<S extends DescService>(service: S, inspect: Partial<Record<keyof S["method"], Inspector>> = {}): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: methodPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: encoder(method.input),
      requestDeserialize: inspectingDecoder(method.input, (inspect as Record<string, Inspector | undefined>)[method.localName]),
      responseSerialize: encoder(method.output),
      responseDeserialize: decoder(method.output),
      originalName: method.localName,
    };
  }
  return definition;
}

type AnyStream = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Ends a server stream with an error status: grpc-js's own 'error' listener stores the status and ends the call. */
function failStream(call: AnyStream, status: ErrorStatus): void {
  if (call.cancelled || call.destroyed || call.writableEnded) return; // no status can be sent any more
  call.emit("error", Object.assign(new Error(status.details), status));
}

function endStream(call: AnyStream): void {
  if (!call.cancelled && !call.destroyed && !call.writableEnded) call.end();
}

/**
 * Adapts async handlers to grpc-js. A unary handler's result (or thrown error, through
 * `onError`) goes to the callback. A server-streaming handler's promise ends the call:
 * OK when it resolves, the `onError` status when it rejects. A bidi handler may return
 * a promise (same rule) or nothing, in which case it ends the call itself (`call.end()`);
 * `for await (const req of call)` is safe in a bidi handler (the stream is not destroyed
 * when the loop ends, so the status can still be sent).
 * Methods left out answer UNIMPLEMENTED (grpc-js's default handler).
 * @example
 * server.addService(serviceDefinition(RunService), implement(RunService, {
 *   async getRun(req) { return create(GetRunResponseSchema, { run: await load(req.runId) }); },
 * }, (err) => ({ code: grpc.status.INTERNAL, details: String(err) })));
 */
export function implement<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, onError: ErrorMapper): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName] as ((...args: unknown[]) => unknown) | undefined;
    if (!fn) continue;
    const name = methodPath(method).slice(1);
    const toStatus = (err: unknown): ErrorStatus => {
      try {
        return onError(err, name);
      } catch {
        return { code: grpc.status.INTERNAL, details: "error mapping failed" };
      }
    };
    const run = (...args: unknown[]): unknown => {
      try {
        return fn.apply(impl, args);
      } catch (err) {
        return Promise.reject(err);
      }
    };
    /** A refused request is answered without calling the handler. */
    const refused = (request: unknown): ErrorStatus | undefined => {
      const r = refusalOf(request);
      return r && (r.status ?? toStatus(r.error));
    };
    switch (method.methodKind) {
      case "unary":
        out[method.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          void undefer(call.request).then((request) => {
            const refusal = refused(request);
            if (refusal) return callback(refusal);
            Promise.resolve(run(request, call)).then(
              (response) => {
                released(request);
                callback(null, response);
              },
              (err: unknown) => {
                released(request);
                callback(toStatus(err));
              },
            );
          });
        }) as grpc.handleUnaryCall<unknown, unknown>;
        break;
      case "server_streaming":
        out[method.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
          const refusal = refused(call.request);
          if (refusal) return failStream(call, refusal);
          Promise.resolve(run(call.request, call)).then(
            () => {
              released(call.request);
              endStream(call);
            },
            (err: unknown) => {
              released(call.request);
              failStream(call, toStatus(err));
            },
          );
        }) as grpc.handleServerStreamingCall<unknown, unknown>;
        break;
      case "bidi_streaming":
        out[method.localName] = ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
          // A Readable's default async iterator destroys the stream when the loop ends (even
          // normally), after which grpc-js can no longer send the status: the call would hang.
          // A refused message ends the loop with its error (the handler's promise rejects with it).
          call[Symbol.asyncIterator] = () => refusingIterator(call.iterator({ destroyOnReturn: false }));
          const result = run(call);
          if (result instanceof Promise)
            result.then(
              () => endStream(call),
              (err: unknown) => failStream(call, toStatus(err)),
            );
        }) as grpc.handleBidiStreamingCall<unknown, unknown>;
        break;
      default:
        throw new Error(`${name}: ${method.methodKind} methods are not supported`);
    }
  }
  return out;
}

/** A refused message in a stream becomes an error thrown by the iterator, so the handler's loop cannot take it for a message. */
export class RefusedMessageError extends Error {
  constructor(readonly refusal: { error?: unknown; status?: ErrorStatus }) {
    super(refusal.status?.details ?? (refusal.error as Error)?.message ?? "refused message");
    this.name = "RefusedMessageError";
  }
}

function refusingIterator(inner: AsyncIterator<unknown>): AsyncIterableIterator<unknown> {
  const it: AsyncIterableIterator<unknown> = {
    async next() {
      const r = await inner.next();
      const refusal = r.done ? undefined : refusalOf(r.value);
      if (refusal) throw new RefusedMessageError(refusal);
      return r;
    },
    return: inner.return ? (v?: unknown) => inner.return!(v) : undefined,
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

export { receivedBytes };
