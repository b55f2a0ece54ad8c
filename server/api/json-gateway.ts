// A thin JSON gateway over the gRPC handlers, for the dashboard (and curl):
// `POST /api/<full service name>/<Method>` with the request message as
// protobuf JSON answers the response message as protobuf JSON, the shape of
// the Connect protocol's unary JSON. It calls the very handlers the gRPC
// server calls, with the same token and namespace checks (the call's headers
// become its metadata): a method behaves the same whichever door it came in.
//
// A server-streaming method (WatchRun) answers `application/x-ndjson`: one
// response message a line, and an error after the first line as a last line
// `{"error": {...}}`.
//
// Only the methods listed are served (reads, controls, counts, resubmit and
// the admin lists): submitting stays on gRPC, where admission control bounds
// what a request may cost. Browsers cannot make a cross-site request with
// `content-type: application/json` without a CORS preflight, which is never
// granted; a request from another origin is refused outright. Tokens travel in
// the authorization header, never in cookies.

import type http from "node:http";
import { fromJson, toJson, type DescMethod, type DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { MAX_MESSAGE_BYTES, type ErrorMapper } from "@pipewright/protocol";
import type { Auth } from "./auth.js";
import { namespaceRefusal } from "./namespace.js";

/** A service and the handlers (the ones given to the gRPC server) of the methods served. */
export interface GatewayService {
  service: DescService;
  impl: object;
  methods: readonly string[];
}

export interface GatewayOptions {
  onError: ErrorMapper;
  /** Token checks; undefined: auth off (only the namespace header is checked). */
  auth?: Auth;
  /** Largest request body read (bytes). */
  maxBodyBytes?: number;
}

/** Request headers that become the call's metadata. */
const FORWARDED_HEADERS = ["authorization", "pipewright-namespace", "traceparent", "tracestate"];

/** gRPC status → the Connect protocol's error code and HTTP status. */
const CONNECT: Record<number, [string, number]> = {
  [grpc.status.CANCELLED]: ["canceled", 499],
  [grpc.status.UNKNOWN]: ["unknown", 500],
  [grpc.status.INVALID_ARGUMENT]: ["invalid_argument", 400],
  [grpc.status.DEADLINE_EXCEEDED]: ["deadline_exceeded", 504],
  [grpc.status.NOT_FOUND]: ["not_found", 404],
  [grpc.status.ALREADY_EXISTS]: ["already_exists", 409],
  [grpc.status.PERMISSION_DENIED]: ["permission_denied", 403],
  [grpc.status.RESOURCE_EXHAUSTED]: ["resource_exhausted", 429],
  [grpc.status.FAILED_PRECONDITION]: ["failed_precondition", 400],
  [grpc.status.ABORTED]: ["aborted", 409],
  [grpc.status.OUT_OF_RANGE]: ["out_of_range", 400],
  [grpc.status.UNIMPLEMENTED]: ["unimplemented", 501],
  [grpc.status.INTERNAL]: ["internal", 500],
  [grpc.status.UNAVAILABLE]: ["unavailable", 503],
  [grpc.status.DATA_LOSS]: ["data_loss", 500],
  [grpc.status.UNAUTHENTICATED]: ["unauthenticated", 401],
};

interface Status {
  code: grpc.status;
  details: string;
}

/** The JSON error body of a status: `{"code": "not_found", "message": "..."}`. */
export function errorBody(s: Status): { code: string; message: string } {
  return { code: (CONNECT[s.code] ?? CONNECT[grpc.status.UNKNOWN])[0], message: s.details };
}

/**
 * The gateway's handler: answers requests under `/api/` and returns true;
 * returns false for any other path (the caller serves those).
 */
export function jsonGateway(services: readonly GatewayService[], options: GatewayOptions): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  const routes = new Map<string, { method: DescMethod; handler: (...args: unknown[]) => unknown; impl: object }>();
  for (const { service, impl, methods } of services) {
    for (const method of service.methods) {
      if (!methods.includes(method.name)) continue;
      const handler = (impl as Record<string, unknown>)[method.localName];
      if (typeof handler !== "function") throw new Error(`no handler for ${service.typeName}/${method.name}`);
      routes.set(`/api/${service.typeName}/${method.name}`, { method, handler: handler as (...args: unknown[]) => unknown, impl });
    }
  }
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;

  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (!path.startsWith("/api/")) return false;
    const fail = (s: Status) => sendError(res, s);
    const route = routes.get(path);
    if (!route) {
      fail({ code: grpc.status.UNIMPLEMENTED, details: `no method at ${path.slice(0, 200)}: methods are POST /api/<service>/<Method>` });
      return true;
    }
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      sendJson(res, 405, errorBody({ code: grpc.status.UNIMPLEMENTED, details: "use POST" }));
      return true;
    }
    if (!sameOrigin(req)) {
      fail({ code: grpc.status.PERMISSION_DENIED, details: "cross-origin requests are not served" });
      return true;
    }
    if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
      sendJson(res, 415, errorBody({ code: grpc.status.INVALID_ARGUMENT, details: "content-type must be application/json" }));
      return true;
    }
    const metadata = new grpc.Metadata();
    for (const name of FORWARDED_HEADERS) {
      const value = req.headers[name];
      if (typeof value === "string") metadata.set(name, value);
    }
    const methodPath = `/${route.method.parent.typeName}/${route.method.name}`;
    const refusal = options.auth ? options.auth.check(methodPath, metadata) : namespaceRefusal(metadata);
    if (refusal) {
      fail(refusal);
      return true;
    }
    void readBody(req, maxBody).then(
      (body) => serve(route, body, metadata, req, res, options.onError, options.auth),
      (s: Status) => fail(s),
    );
    return true;
  };
}

async function serve(
  route: { method: DescMethod; handler: (...args: unknown[]) => unknown; impl: object },
  body: string,
  metadata: grpc.Metadata,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  onError: ErrorMapper,
  auth: Auth | undefined,
): Promise<void> {
  const { method } = route;
  const name = `${method.parent.typeName}/${method.name}`;
  let request: unknown;
  try {
    request = fromJson(method.input, body.trim() === "" ? {} : JSON.parse(body));
  } catch (err) {
    sendError(res, {
      code: grpc.status.INVALID_ARGUMENT,
      details: `invalid request: not a valid ${method.input.typeName} in JSON: ${(err as Error).message}`.slice(0, 1000),
    });
    return;
  }
  const call = new GatewayCall(metadata, req, res, method);
  // A stream runs as long as its run: if its token is revoked meanwhile, it ends (as on gRPC).
  const forget = auth && method.methodKind !== "unary" ? auth.track(`/${name}`, metadata, (refusal) => call.revoke(refusal)) : undefined;
  try {
    const response = await route.handler.call(route.impl, request, call);
    if (method.methodKind === "unary") sendJson(res, 200, toJson(method.output, response as never));
    else call.end();
  } catch (err) {
    const status = safeStatus(onError, err, name);
    if (call.started) call.endWithError(status);
    else sendError(res, status);
  } finally {
    forget?.();
  }
}

/**
 * What a handler gets as its call: the metadata, a "cancelled" event when the
 * HTTP client goes away, and for a server stream `write`, which sends one line.
 */
class GatewayCall {
  started = false;
  private readonly cancelListeners: (() => void)[] = [];

  constructor(
    readonly metadata: grpc.Metadata,
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly method: DescMethod,
  ) {
    res.on("close", () => {
      if (!res.writableFinished) for (const l of this.cancelListeners) l();
    });
  }

  on(event: string, listener: () => void): this {
    if (event === "cancelled") this.cancelListeners.push(listener);
    return this;
  }

  getPeer(): string {
    return `${this.req.socket.remoteAddress}:${this.req.socket.remotePort}`;
  }

  write(message: unknown): boolean {
    if (this.res.writableEnded) return false; // ended early (revoked, or the client left)
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-content-type-options": "nosniff" });
    }
    return this.res.write(`${JSON.stringify(toJson(this.method.output, message as never))}\n`);
  }

  end(): void {
    if (this.res.writableEnded) return;
    if (!this.started) this.res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    this.res.end();
  }

  endWithError(s: Status): void {
    if (this.res.writableEnded) return;
    this.res.end(`${JSON.stringify({ error: errorBody(s) })}\n`);
  }

  /** Its token was revoked: the client gets the refusal, the handler a cancellation (it lets go of the run). */
  revoke(refusal: Status): void {
    if (this.started) this.endWithError(refusal);
    else sendError(this.res, refusal);
    for (const l of this.cancelListeners) l();
  }
}

function safeStatus(onError: ErrorMapper, err: unknown, name: string): Status {
  try {
    return onError(err, name);
  } catch {
    return { code: grpc.status.INTERNAL, details: "error mapping failed" };
  }
}

function sendError(res: http.ServerResponse, s: Status): void {
  if (res.headersSent) return;
  sendJson(res, (CONNECT[s.code] ?? CONNECT[grpc.status.UNKNOWN])[1], errorBody(s));
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff" });
  res.end(JSON.stringify(body));
}

/** A browser's request from a page of another origin carries that origin: refused. Requests without Origin (curl) pass. */
function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The body as text, at most `limit` bytes (RESOURCE_EXHAUSTED past it, checked as it arrives). */
function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      req.resume();
      reject({ code: grpc.status.RESOURCE_EXHAUSTED, details: `request body of ${declared} bytes is over the limit of ${limit}` } satisfies Status);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.destroy();
        reject({ code: grpc.status.RESOURCE_EXHAUSTED, details: `request body is over the limit of ${limit} bytes` } satisfies Status);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => reject({ code: grpc.status.CANCELLED, details: "the request was cut" } satisfies Status));
  });
}

/** The largest body the gateway reads by default: its requests are small (ids, filters). */
export const GATEWAY_MAX_BODY = Math.min(1024 * 1024, MAX_MESSAGE_BYTES);
