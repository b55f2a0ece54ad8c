// TLS of the server's ports: the certificate, key and (mTLS) client CA files
// named by --tls-cert, --tls-key and --tls-client-ca, the gRPC credentials made
// of them, and their rotation without a restart: the files are polled
// (fs.watchFile), and once they have stopped changing for a moment they are read
// again, checked (a half-written or mismatched pair is logged and ignored: the
// previous certificate stays) and handed to every listener. grpc-js applies new
// secure-context options to its listening servers (the `_addWatcher` hook of
// ServerCredentials, server.ts createHttp2Server: `setSecureContext`); the metrics
// endpoint's https server gets the same through `onChange`. Connections already
// open keep the certificate they were made with; new ones get the new one.
//
// Also: the start is refused when the server would listen on a non-loopback
// address without TLS and caller authentication (tokens or client
// certificates), unless --insecure says so.

import { readFileSync, unwatchFile, watchFile, type Stats } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { isIP } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { ServerConfig } from "./config.js";
import type { Logger } from "./observe/logger.js";

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** Client CA (mTLS), when --tls-client-ca is set. */
  ca?: Buffer;
}

/** How often the files are looked at, and how long they must be still before they are read. */
export const TLS_POLL_MS = 500;
export const TLS_SETTLE_MS = 300;

/** Reads and checks the files (throws with the flag's name when one is missing or they do not make a context). */
export function readTlsFiles(config: Pick<ServerConfig, "tlsCert" | "tlsKey" | "tlsClientCa">): TlsFiles {
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${flag}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const files: TlsFiles = { cert: read("--tls-cert", config.tlsCert), key: read("--tls-key", config.tlsKey) };
  if (config.tlsClientCa) files.ca = read("--tls-client-ca", config.tlsClientCa);
  try {
    createSecureContext(contextOptions(files));
  } catch (err) {
    throw new Error(`--tls-cert / --tls-key / --tls-client-ca: ${(err as Error).message}`);
  }
  return files;
}

export function contextOptions(files: TlsFiles): SecureContextOptions {
  return { cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) };
}

/** gRPC server credentials whose certificate can be replaced while the server listens. */
class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(files: TlsFiles) {
    // mTLS: ask for a client certificate and refuse the handshake without a valid one.
    super({ requestCert: files.ca !== undefined, rejectUnauthorized: files.ca !== undefined }, contextOptions(files));
  }
  update(files: TlsFiles): void {
    this.updateSecureContextOptions(contextOptions(files));
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export interface ServerTls {
  credentials: grpc.ServerCredentials;
  /** The files as last read (for the metrics endpoint). */
  current(): TlsFiles;
  /** Called with the new files after each successful reload. */
  onChange(listener: (files: TlsFiles) => void): void;
  /** Stops watching the files. */
  close(): void;
}

/** TLS from the config, watching its files; undefined when --tls-cert is not set. */
export function serverTls(config: ServerConfig, log: Logger): ServerTls | undefined {
  if (!config.tlsCert && !config.tlsKey) {
    if (config.tlsClientCa) throw new Error("--tls-client-ca needs --tls-cert and --tls-key");
    return undefined;
  }
  if (!config.tlsCert || !config.tlsKey) throw new Error("--tls-cert and --tls-key go together: give both");
  let files = readTlsFiles(config);
  const credentials = new ReloadableServerCredentials(files);
  const listeners: ((files: TlsFiles) => void)[] = [(f) => credentials.update(f)];
  const paths = [config.tlsCert, config.tlsKey, config.tlsClientCa].filter(Boolean);
  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    timer = undefined;
    try {
      files = readTlsFiles(config);
    } catch (err) {
      log.error({ err }, `TLS files changed but cannot be used (the previous certificate stays): ${(err as Error).message}`);
      return;
    }
    for (const l of listeners) l(files);
    log.info({ files: paths }, "TLS certificate files re-read: new connections use them");
  };
  const changed = (now: Stats, before: Stats) => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    clearTimeout(timer); // a cert and its key are written one after the other: wait for both
    timer = setTimeout(reload, TLS_SETTLE_MS);
  };
  for (const p of paths) watchFile(p, { interval: TLS_POLL_MS, persistent: false }, changed);
  return {
    credentials,
    current: () => files,
    onChange: (l) => listeners.push(l),
    close: () => {
      clearTimeout(timer);
      for (const p of paths) unwatchFile(p, changed);
    },
  };
}

/** True for 127.0.0.0/8, ::1 and localhost (with or without a port, IPv6 in brackets or not). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}

/** The host part of "host:port", "[v6]:port" or ":port" (""). */
export function hostOf(address: string): string {
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}

/**
 * Refuses to listen beyond loopback unless the port is safe there, or --insecure says
 * so: the gRPC port needs TLS and authenticated callers (tokens, `authenticated`, or
 * client certificates, --tls-client-ca), and so does the dashboard's (its API is the same);
 * the metrics port TLS.
 */
export function checkExposure(config: ServerConfig, authenticated: boolean): void {
  if (config.insecure) return;
  const exposed = (address: string) => address !== "" && !address.startsWith("unix:") && !isLoopback(hostOf(address)); // a unix socket is not on a network
  const missing: string[] = [];
  if (!config.tlsCert) missing.push("TLS (--tls-cert and --tls-key)");
  if (exposed(config.address) && !authenticated && !config.tlsClientCa)
    missing.push("caller authentication (--tokens-file or PIPEWRIGHT_ADMIN_TOKEN, or client certificates with --tls-client-ca)");
  for (const [flag, address, needs] of [
    ["--address", config.address, missing],
    ["--metrics-address", config.metricsAddress, missing.filter((m) => m.startsWith("TLS"))],
    ["--dashboard-address", config.dashboardAddress, missing],
  ] as const) {
    if (!exposed(address) || needs.length === 0) continue;
    throw new Error(
      `${flag} ${address} is not a loopback address and ${needs.join(" and ")} ${needs.length > 1 ? "are" : "is"} missing: anyone who reaches it could submit, cancel and receive every task. ` +
        `Give ${needs.join(" and ")}, or pass --insecure if that is really wanted there`,
    );
  }
}
