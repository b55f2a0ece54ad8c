// The dashboard's port (--dashboard-address): the built page (dashboard/dist:
// index.html and its hashed assets) and the JSON gateway it talks to
// (json-gateway.ts). One process, no CDN: the page and the API come from the
// same origin, under the same TLS and tokens as the gRPC port.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { hasBody, listenHttp, type HttpPort } from "./http-listen.js";
import type { Logger } from "../observe/logger.js";
import type { ServerTls } from "../tls.js";

export type DashboardEndpoint = HttpPort;

/**
 * Where the built page is: beside the compiled server in the installed package
 * (dist/dashboard, copied there by the package's build), or where `npm run
 * dashboard:build` writes it in the repository (dashboard/dist).
 */
export const DASHBOARD_DIR =
  [new URL("../dashboard/", import.meta.url), new URL("../../dashboard/dist/", import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((dir) => existsSync(path.join(dir, "index.html"))) ?? fileURLToPath(new URL("../../dashboard/dist/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** What the page may do: its own scripts, styles and API, nothing from elsewhere, never framed. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/** Serves the page from `dir` and hands `/api/` to `api` (which answers it and returns true). */
export async function startDashboardEndpoint(
  address: string,
  api: (req: http.IncomingMessage, res: http.ServerResponse) => boolean,
  log: Logger,
  tls?: ServerTls,
  dir = DASHBOARD_DIR,
): Promise<DashboardEndpoint> {
  const handler: http.RequestListener = (req, res) => {
    if (api(req, res)) return;
    if (hasBody(req)) res.shouldKeepAlive = false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
      return;
    }
    void serveFile(dir, (req.url ?? "/").split("?")[0], req.method === "HEAD", res);
  };
  return listenHttp(address, "--dashboard-address", handler, log, tls);
}

/** `/` is index.html (the page routes by its hash); `/assets/…` are the built files, which never change under one name. */
async function serveFile(dir: string, urlPath: string, head: boolean, res: http.ServerResponse): Promise<void> {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath === "/" ? "/index.html" : urlPath);
  } catch {
    res.writeHead(400, { "content-type": "text/plain; charset=utf-8" }).end("bad path\n");
    return;
  }
  const file = path.resolve(dir, `.${path.posix.normalize(rel)}`);
  const type = TYPES[path.extname(file)];
  // Only files inside the folder, of a known type: nothing else of the disk is reachable.
  if (!file.startsWith(dir) || !type || rel.includes("\0")) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
    return;
  }
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    const missingPage = rel === "/index.html";
    res
      .writeHead(missingPage ? 503 : 404, { "content-type": "text/plain; charset=utf-8" })
      .end(missingPage ? "the dashboard is not built: run npm run dashboard:build\n" : "not found\n");
    return;
  }
  res.writeHead(200, {
    "content-type": type,
    "content-length": body.length,
    "cache-control": rel.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    ...SECURITY_HEADERS,
  });
  res.end(head ? undefined : body);
}
