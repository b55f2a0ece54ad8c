// An HTTP(S) port of the server (metrics, dashboard), bounded the way the gRPC
// side is: headers and whole requests must arrive within seconds, headers are
// at most 16 KB (Node's default), at most 64 connections are open at once, and
// a malformed request gets a 400 and its connection closed. Over HTTPS with the
// gRPC port's certificate (and client CA: mTLS) when `tls` is given, following
// its rotations.

import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "../observe/logger.js";
import { contextOptions, type ServerTls } from "../tls.js";

export interface HttpPort {
  /** host:port actually bound. */
  address: string;
  port: number;
  close(): Promise<void>;
}

const TIMEOUT_MS = 5_000;
const MAX_CONNECTIONS = 64;

/** Listens on `address` (host:port; port 0: any free port; `flag` names it in errors) and answers with `handler`. */
export async function listenHttp(address: string, flag: string, handler: http.RequestListener, log: Logger, tls?: ServerTls): Promise<HttpPort> {
  const { host, port } = splitAddress(address, flag);
  const options = { requestTimeout: TIMEOUT_MS, headersTimeout: TIMEOUT_MS, keepAliveTimeout: TIMEOUT_MS, maxHeaderSize: 16 * 1024 };
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
  server.on("error", (err) => log.error({ err }, `${flag} ${address}: ${err.message}`));
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

/** Whether the request has a body (never read by handlers that take none: the connection then closes after the answer). */
export function hasBody(req: http.IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

function httpsServer(tls: ServerTls, options: http.ServerOptions, handler: http.RequestListener): https.Server {
  const files = tls.current();
  const mtls = files.ca !== undefined;
  const server = https.createServer({ ...options, ...contextOptions(files), requestCert: mtls, rejectUnauthorized: mtls }, handler);
  tls.onChange((f) => server.setSecureContext(contextOptions(f)));
  return server;
}

/** "host:port", "[::1]:port" or ":port" (all interfaces). */
function splitAddress(address: string, flag: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag} must be host:port (port 0: any free port), got ${JSON.stringify(address)}`);
  }
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0";
  return { host, port };
}
