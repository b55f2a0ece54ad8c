// The metrics endpoint: GET /metrics in the Prometheus text format, on its
// own HTTP port (--metrics-address; server/http/listen.ts bounds it), 404 for
// anything else. With tokens on, a scrape needs `authorization: Bearer
// <token>` with the metrics scope. Request bodies are never read (a request
// that has one gets its answer and its connection closed). A scrape reads the
// database twice (queue depth, pool), each bounded by a statement timeout
// (server/store).

import type http from "node:http";
import { hasBody, listenHttp, type HttpPort } from "./http-listen.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import type { ServerTls } from "../tls.js";

export type MetricsEndpoint = HttpPort;

/** Serves `metrics` on `address`; `authorize` (tokens on) says whether a request's `authorization` header may read them. */
export async function startMetricsEndpoint(
  address: string,
  metrics: Metrics,
  log: Logger,
  tls?: ServerTls,
  authorize?: (authorization: string | undefined) => "ok" | 401 | 403,
): Promise<MetricsEndpoint> {
  const handler: http.RequestListener = (req, res) => {
    // A body is never read: the answer goes out, then the connection closes (so the rest is not parsed as a next request).
    if (hasBody(req)) res.shouldKeepAlive = false;
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
  return listenHttp(address, "--metrics-address", handler, log, tls);
}
