// What a Worker is built with (see worker.ts).

import type { TlsOptions } from "@pipewright/protocol";
import type { TaskDefinition } from "./task.js";

export interface WorkerOptions {
  /**
   * Server address, or several (a list, or comma-separated): the worker uses
   * one at a time and moves to the next when its stream breaks, so it follows
   * the surviving servers when one goes away. Default PIPEWRIGHT_ADDRESS or
   * 127.0.0.1:50051.
   */
  address?: string | string[];
  /** The tasks this worker runs. */
  tasks: TaskDefinition<any, any>[];
  /** Attempts run at once (default 10). */
  slots?: number;
  /** Queues served (default: the default queue). */
  queues?: string[];
  /** A name for humans (default host:pid). */
  name?: string;
  /**
   * Reconnection backoff bounds in ms (default 100 and 1000: back within ~1 s
   * of the server returning, however long it was away; each try against a
   * server that is down is one refused connect).
   */
  reconnectDelayMs?: { initial: number; max: number };
  /** The token sent when connecting (it needs the worker scope). Default: PIPEWRIGHT_TOKEN; unset: none. */
  token?: string;
  /** The namespace whose tasks this worker runs (its token must allow it). Default: PIPEWRIGHT_NAMESPACE, or the default namespace. */
  namespace?: string;
  /** Where the worker says what it does (connected, lost its server, cannot reach it). Default: standard error; `() => {}` silences it. */
  log?: (line: string) => void;
  /**
   * TLS to the server: `ca` (PEM) that signed its certificate, and for mTLS this
   * worker's `cert` and `key`. Default: the files named by PIPEWRIGHT_TLS_CA,
   * PIPEWRIGHT_TLS_CERT and PIPEWRIGHT_TLS_KEY, or plaintext when none is set.
   */
  tls?: TlsOptions;
}
