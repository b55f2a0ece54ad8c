// The metrics endpoint: GET /metrics in the Prometheus text format, on its
// own HTTP port (--metrics-address), 404 for anything else. With tokens on, a
// scrape needs `authorization: Bearer <token>` with the metrics scope. It is bounded the
// way the gRPC side is: request bodies are never read (a request that has one
// gets its answer and its connection closed), headers and whole requests must
// arrive within seconds, headers are at most 16 KB (Node's default) and at most
// 64 connections are open at once. A scrape reads the database twice (queue
// depth, pool), each bounded by a statement timeout (server/store).

import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { contextOptions, type ServerTls } from "../tls.js";

export interface MetricsEndpoint {
  /** host:port actually bound. */
  address: string;
  port: number;
  close(): Promise<void>;
}

const TIMEOUT_MS = 5_000;
const MAX_CONNECTIONS = 64;

/**
 * Listens on `address` (host:port; port 0: any free port) and serves `metrics`; over
 * HTTPS with the gRPC port's certificate (and client CA: mTLS) when `tls` is given,
 * following its rotations.
 */
export async function startMetricsEndpoint(
  address: string,
  metrics: Metrics,
  log: Logger,
  tls?: ServerTls,
  authorize?: (authorization: string | undefined) => "ok" | 401 | 403,
): Promise<MetricsEndpoint> {
  const { host, port } = splitAddress(address);
  const options = { requestTimeout: TIMEOUT_MS, headersTimeout: TIMEOUT_MS, keepAliveTimeout: TIMEOUT_MS, maxHeaderSize: 16 * 1024 };
  const handler: http.RequestListener = (req, res) => {
    // A body is never read: the answer goes out, then the connection closes (so the rest is not parsed as a next request).
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
    if (hasBody) res.shouldKeepAlive = false;
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: metrics are at GET /metrics\n");
      return;
    }
    // With tokens on, a scrape presents one with the metrics scope (Prometheus: `authorization: { credentials: ... }`).
    const allowed = authorize ? authorize(req.headers.authorization) : "ok";
    if (allowed === 401) {
      res
        .writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="pipewright metrics"' })
        .end("missing or invalid token\n");
      return;
    }
    if (allowed === 403) {
      res.writeHead(403, { "content-type": "text/plain; charset=utf-8" }).end("this token lacks the scope metrics\n");
      return;
    }
    metrics.text().then(
      (text) => {
        res.writeHead(200, { "content-type": metrics.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (err: Error) => {
        log.error({ err }, `collecting the metrics: ${err.message}`);
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("could not collect the metrics\n");
      },
    );
  };
  const server = tls ? httpsServer(tls, options, handler) : http.createServer(options, handler);
  server.maxConnections = MAX_CONNECTIONS;
  server.on("clientError", (_err, socket) => {
    // Malformed requests, oversized headers, timeouts: a 400 if the socket still takes one, then it closes.
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, `metrics endpoint: ${err.message}`));
  const bound = server.address() as AddressInfo;
  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${bound.port}`,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function httpsServer(tls: ServerTls, options: http.ServerOptions, handler: http.RequestListener): https.Server {
  const files = tls.current();
  const mtls = files.ca !== undefined;
  const server = https.createServer({ ...options, ...contextOptions(files), requestCert: mtls, rejectUnauthorized: mtls }, handler);
  tls.onChange((f) => server.setSecureContext(contextOptions(f)));
  return server;
}

/** "host:port", "[::1]:port" or ":port" (all interfaces). */
function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--metrics-address must be host:port (port 0: any free port), got ${JSON.stringify(address)}`);
  }
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0";
  return { host, port };
}
