// Channel credentials for clients, workers and the CLI: TLS (and mTLS when a
// client certificate is given) or, with no TLS settings at all, plaintext.
// Options win; without them PIPEWRIGHT_TLS_CA, PIPEWRIGHT_TLS_CERT and
// PIPEWRIGHT_TLS_KEY (file paths) are read.

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** TLS settings of a client: PEM strings or Buffers. */
export interface TlsOptions {
  /** CA certificate(s) that signed the server's certificate (default: the system's roots). */
  ca?: string | Buffer;
  /** Client certificate (mTLS); needs `key`. */
  cert?: string | Buffer;
  /** Private key of `cert`. */
  key?: string | Buffer;
}

const pem = (v: string | Buffer | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

/**
 * The TLS settings from PIPEWRIGHT_TLS_CA / _CERT / _KEY (file paths, read now), or
 * undefined when none is set.
 */
export function tlsFromEnvironment(env: Record<string, string | undefined> = process.env): TlsOptions | undefined {
  const [ca, cert, key] = [env.PIPEWRIGHT_TLS_CA, env.PIPEWRIGHT_TLS_CERT, env.PIPEWRIGHT_TLS_KEY];
  if (!ca && !cert && !key) return undefined;
  const read = (name: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${name}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  return { ca: read("PIPEWRIGHT_TLS_CA", ca), cert: read("PIPEWRIGHT_TLS_CERT", cert), key: read("PIPEWRIGHT_TLS_KEY", key) };
}

/**
 * Credentials for a channel: TLS with `tls` when given, else with the
 * PIPEWRIGHT_TLS_* files when any is set, else plaintext (insecure).
 */
export function channelCredentials(tls?: TlsOptions, env: Record<string, string | undefined> = process.env): grpc.ChannelCredentials {
  const settings = tls ?? tlsFromEnvironment(env);
  if (!settings) return grpc.credentials.createInsecure();
  if ((settings.cert === undefined) !== (settings.key === undefined)) {
    throw new Error("TLS: a client certificate and its key go together (give both cert and key, or neither)");
  }
  return grpc.credentials.createSsl(pem(settings.ca), pem(settings.key), pem(settings.cert));
}
