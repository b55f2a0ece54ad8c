/**
 * The client half of the glue between protobuf-es descriptors and grpc-js: a
 * typed client from a generated `GenService` (the server half is grpc-bridge.ts).
 * Shared by the client library, the worker SDK and the CLI.
 */
import { NAMESPACE_HEADER, namespaceProblem } from "./namespaces.js";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import type { DescMessage, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { decoder, encoder, methodPath, type Rpc } from "./grpc-codec.js";
import { MAX_MESSAGE_BYTES } from "./limits.js";
import { channelCredentials, type TlsOptions } from "./tls.js";

/** Per-call client options. */
export interface CallOptions {
  /** Absolute deadline: a Date or a millisecond timestamp (e.g. `Date.now() + 5000`). */
  deadline?: Date | number;
  /** Aborting cancels the call; it then fails with a CANCELLED ServiceError. */
  signal?: AbortSignal;
  metadata?: grpc.Metadata;
}

/** The client-side function for one method, derived from its descriptor. */
export type ClientMethod<M> =
  M extends Rpc<"unary", infer I, infer O>
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : M extends Rpc<"server_streaming", infer I, infer O>
      ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
      : M extends Rpc<"bidi_streaming", infer I, infer O>
        ? (options?: CallOptions) => grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>>
        : never;

/** A typed client for `S`: one function per method (by localName), plus `close()`. */
export type Client<S extends DescService> = { [K in keyof S["method"]]: ClientMethod<S["method"][K]> } & {
  /** Closes the channel; calls in flight are not cancelled. */
  close(): void;
};

function callOptions(options: CallOptions): grpc.CallOptions {
  return options.deadline === undefined ? {} : { deadline: options.deadline };
}

/** Cancels `call` when `signal` aborts; returns the function that unlinks them. */
function linkSignal(call: { cancel(): void }, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  const onAbort = () => call.cancel();
  if (signal.aborted) queueMicrotask(onAbort);
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/**
 * Creates a typed client. Unary methods return a promise that rejects with the
 * grpc `ServiceError` (code, details, metadata); server-streaming methods return an
 * async iterable (leaving a `for await` early cancels the call); bidi methods return
 * the grpc-js duplex stream, which reads and writes protobuf-es messages.
 * @example
 * const runs = createClient(RunService, "127.0.0.1:50051");
 * const { run } = await runs.getRun({ runId }, { deadline: Date.now() + 5000 });
 * for await (const { event } of runs.watchRun({ runId })) console.log(event);
 * runs.close();
 */
export function createClient<S extends DescService>(
  service: S,
  address: string,
  options: {
    credentials?: grpc.ChannelCredentials;
    /** TLS settings; unset: PIPEWRIGHT_TLS_* or plaintext (see tls.ts). Ignored when credentials are given. */
    tls?: TlsOptions;
    channelOptions?: grpc.ChannelOptions;
    /** Sent with every call as `authorization: Bearer <token>` (the server's scoped tokens); unset or empty: none. */
    token?: string;
    /** The namespace every call works in (`pipewright-namespace` metadata); unset or empty: the server's default. */
    namespace?: string;
  } = {},
): Client<S> {
  // gRPC's default reconnect backoff starts at 1 s and grows x1.6 up to 120 s:
  // a worker reconnecting through a 10 s server outage was back 2.7-2.8 s
  // after SERVING (3-17 s after 20-60 s outages); with 100 ms growing to 1 s,
  // 0.4-0.8 s (test/faults/server-outage-reconnect.test.ts). A refused connect
  // to a server that is down costs next to nothing. The caller's options win.
  // Messages up to the protocol's limit both ways (grpc-js receives at most 4 MiB by default,
  // while the server sends up to MAX_MESSAGE_BYTES: a worker could not take a 5 MB argument).
  const channelOptions: grpc.ChannelOptions = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    ...options.channelOptions,
  };
  const raw = new grpc.Client(address, options.credentials ?? channelCredentials(options.tls), channelOptions);
  const client: Record<string, unknown> = { close: () => raw.close() };
  // Per call, in the metadata: grpc-js refuses call credentials on an insecure channel.
  // What the caller's own metadata already says wins.
  const problem = options.namespace ? namespaceProblem(options.namespace) : undefined;
  if (problem) throw new Error(`namespace: ${problem}`);
  const defaults: [string, string][] = [];
  if (options.token) defaults.push(["authorization", `Bearer ${options.token}`]);
  if (options.namespace) defaults.push([NAMESPACE_HEADER, options.namespace]);
  const withToken = (metadata: grpc.Metadata | undefined): grpc.Metadata => {
    const missing = defaults.filter(([key]) => !metadata?.get(key).length);
    if (missing.length === 0) return metadata ?? new grpc.Metadata();
    const out = metadata ? metadata.clone() : new grpc.Metadata();
    for (const [key, value] of missing) out.set(key, value);
    return out;
  };
  for (const method of service.methods) {
    const path = methodPath(method);
    const [serialize, deserialize] = [encoder(method.input), decoder(method.output)];
    switch (method.methodKind) {
      case "unary":
        client[method.localName] = (init: MessageInitShape<DescMessage>, opts: CallOptions = {}) =>
          new Promise((resolve, reject) => {
            const request = create(method.input, init) as never;
            const metadata = withToken(opts.metadata);
            let unlink = () => {};
            const call = raw.makeUnaryRequest(path, serialize, deserialize, request, metadata, callOptions(opts), (err, res) => {
              unlink();
              if (err) reject(err);
              else resolve(res);
            });
            unlink = linkSignal(call, opts.signal);
          });
        break;
      case "server_streaming":
        client[method.localName] = async function* (init: MessageInitShape<DescMessage>, opts: CallOptions = {}) {
          const request = create(method.input, init) as never;
          const metadata = withToken(opts.metadata);
          const call = raw.makeServerStreamRequest(path, serialize, deserialize, request, metadata, callOptions(opts));
          const unlink = linkSignal(call, opts.signal);
          try {
            // A Readable's async iterator ends on 'end' and throws what 'error' carries (the ServiceError).
            for await (const message of call) yield message as MessageShape<DescMessage>;
          } finally {
            unlink();
            call.on("error", () => {}); // the CANCELLED error that cancel() below may emit
            call.cancel(); // no-op when the call already finished
          }
        };
        break;
      case "bidi_streaming":
        client[method.localName] = (opts: CallOptions = {}) => {
          const call = raw.makeBidiStreamRequest(path, encoder(method.input), deserialize, withToken(opts.metadata), callOptions(opts));
          const unlink = linkSignal(call, opts.signal);
          call.on("status", unlink);
          return call;
        };
        break;
      default:
        throw new Error(`${path}: ${method.methodKind} methods are not supported`);
    }
  }
  return client as Client<S>;
}
