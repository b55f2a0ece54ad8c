// How the CLI's client verbs reach the server: --address, and TLS with
// --tls-ca, --tls-cert and --tls-key (PEM files; or PIPEWRIGHT_TLS_CA,
// PIPEWRIGHT_TLS_CERT, PIPEWRIGHT_TLS_KEY). Without any, plaintext.

import { readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import type { TlsOptions } from "@pipewright/protocol";
import { CliError, EXIT, callError } from "./output.js";

export interface ConnectionOptions {
  address: string;
  /** --token and --namespace (server/cli/token.ts). */
  token?: string;
  namespace?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Adds the TLS options to every subcommand of `program` that has --address. */
export function addTlsOptions(program: Command): void {
  for (const cmd of program.commands) {
    if (!cmd.options.some((o) => o.long === "--address") || cmd.name() === "server") continue;
    cmd
      .addOption(new Option("--tls-ca <file>", "TLS: PEM of the CA that signed the server's certificate").env("PIPEWRIGHT_TLS_CA"))
      .addOption(new Option("--tls-cert <file>", "mTLS: PEM of this client's certificate").env("PIPEWRIGHT_TLS_CERT"))
      .addOption(new Option("--tls-key <file>", "mTLS: PEM of the key of --tls-cert").env("PIPEWRIGHT_TLS_KEY"));
  }
}

/** The TLS settings the options name (files read now), or undefined: plaintext. */
export function tlsOf(opts: Pick<ConnectionOptions, "tlsCa" | "tlsCert" | "tlsKey">): TlsOptions | undefined {
  if (!opts.tlsCa && !opts.tlsCert && !opts.tlsKey) return undefined;
  if (!opts.tlsCert !== !opts.tlsKey) throw new CliError("--tls-cert and --tls-key go together: give both or neither", EXIT.usage);
  const read = (flag: string, path?: string) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CliError(`${flag}: cannot read ${path}: ${(err as Error).message}`, EXIT.usage);
    }
  };
  return { ca: read("--tls-ca", opts.tlsCa), cert: read("--tls-cert", opts.tlsCert), key: read("--tls-key", opts.tlsKey) };
}

/** What a verb's connection opens: a client of the server (PipewrightClient, or a typed service client). */
export type Open<C> = (address: string, options: { token?: string; namespace?: string; tls?: TlsOptions }) => C;

/**
 * Runs `body` with a client opened from the verb's options (--address,
 * --token or PIPEWRIGHT_TOKEN, --namespace, TLS), closes it, and turns a
 * failed call into the CLI's one-line error. Every client verb goes through it.
 */
export async function withConnection<C extends { close(): void }>(
  { address, token, namespace, ...tls }: ConnectionOptions,
  open: Open<C>,
  body: (client: C) => Promise<void>,
): Promise<void> {
  const client = open(address, { token: token ?? process.env.PIPEWRIGHT_TOKEN, namespace, tls: tlsOf(tls) });
  try {
    await body(client);
  } catch (err) {
    throw err instanceof CliError ? err : callError(err, address);
  } finally {
    client.close();
  }
}
