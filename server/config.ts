// Server configuration: one table of options, each settable by a command-line
// flag or an environment variable (the flag wins). The README's configuration
// table lists the same options.

import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./observe/log-options.js";

export interface ServerConfig {
  /** host:port the gRPC server listens on. */
  address: string;
  /** host:port of the Prometheus metrics endpoint (GET /metrics); empty: none. */
  metricsAddress: string;
  dashboardAddress: string;
  /** PEM file of the server's certificate (chain); with tlsKey: TLS on the gRPC and metrics ports. */
  tlsCert: string;
  /** PEM file of the private key of tlsCert. */
  tlsKey: string;
  /** PEM file of the CA(s) client certificates must be signed by (mTLS); empty: no client certificate asked. */
  tlsClientCa: string;
  /** Listen on a non-loopback address without TLS, or without tokens or client certificates, all the same. */
  insecure: boolean;
  /** PostgreSQL to use; when empty an embedded PostgreSQL is started. */
  databaseUrl: string;
  /** Data folder of the embedded PostgreSQL. */
  dataDir: string;
  /** Port of the embedded PostgreSQL; 0 picks a free one. */
  embeddedPort: number;
  maxTasksPerRun: number;
  /** Messages one request may hold (what decoding it allocates: about one object each). */
  maxRequestMessages: number;
  /** Messages of requests being decoded and handled at once, all clients together. */
  maxMessagesInFlight: number;
  maxDepth: number;
  /** Attempts for tasks whose call sets no retry policy (1 = no retry). */
  defaultMaxAttempts: number;
  heartbeatIntervalMs: number;
  /** Defaults for tasks that set no timeout (0: none). */
  defaultWaitTimeoutMs: number;
  defaultExecutionTimeoutMs: number;
  defaultHeartbeatTimeoutMs: number;
  /** A worker-lost attempt (stream broke, server died) is re-queued this many times, then fails with pipewright.WorkerLost. */
  maxLostAttempts: number;
  leaseMs: number;
  /** A server process silent this long is considered dead; its attempts are re-queued. */
  processTimeoutMs: number;
  /** A wait on a run another process owns also reads the database this often, should that process's announcement of its end be missed. */
  remoteWaitPollMs: number;
  /** A run that has only waited (sleep, signal, event) this long, with nothing due sooner, leaves memory (engine/parking.ts); 0: never. */
  parkWaitsOverMs: number;
  /** How long a shutdown waits for workers to finish what they hold. */
  drainGraceMs: number;
  /** Failures in a row that open a task's circuit (0: breakers off). */
  circuitBreakerThreshold: number;
  /** How long an open circuit waits before a probe. */
  circuitBreakerCooldownMs: number;
  /** Finished runs older than this many hours are deleted, with their events (0: kept forever). */
  retentionHours: number;
  /** File of tokens (one a line: name, scopes, sha256 of the secret), re-read when it changes; empty: none (README: Security / Tokens). */
  tokensFile: string;
  /** A token with every scope (from the environment); empty: none. With neither this nor tokensFile, auth is off. */
  adminToken: string;
  /** Database connections of this process. */
  poolSize: number;
  /** Lowest level logged: trace, debug, info, warn, error, fatal or silent. */
  logLevel: LogLevel;
  /** auto (pretty on a terminal, JSON lines otherwise), json or pretty. */
  logFormat: LogFormat;
  /** Same as logLevel "debug" (the flag from before --log-level, kept so that scripts using it still start). */
  verbose: boolean;
}

interface Option {
  key: keyof ServerConfig;
  kind: "string" | "integer" | "boolean" | "choice";
  /** The values a "choice" option accepts. */
  choices?: readonly string[];
  flag: string;
  env: string;
  default: string;
  help: string;
}

export const OPTIONS: Option[] = [
  {
    key: "address",
    kind: "string",
    flag: "--address",
    env: "PIPEWRIGHT_ADDRESS",
    default: "127.0.0.1:50051",
    help: "host:port the gRPC server listens on (port 0: any free port)",
  },
  {
    key: "metricsAddress",
    kind: "string",
    flag: "--metrics-address",
    env: "PIPEWRIGHT_METRICS_ADDRESS",
    default: "",
    help: "host:port of the Prometheus metrics endpoint, GET /metrics (port 0: any free port); unset: no endpoint",
  },
  {
    key: "dashboardAddress",
    kind: "string",
    flag: "--dashboard-address",
    env: "PIPEWRIGHT_DASHBOARD_ADDRESS",
    default: "",
    help: "host:port of the web dashboard and its JSON API (port 0: any free port); unset: no dashboard",
  },
  {
    key: "tlsCert",
    kind: "string",
    flag: "--tls-cert",
    env: "PIPEWRIGHT_TLS_CERT",
    default: "",
    help: "PEM file of the server certificate (chain): TLS on the gRPC and metrics ports (needs --tls-key; re-read when it changes)",
  },
  { key: "tlsKey", kind: "string", flag: "--tls-key", env: "PIPEWRIGHT_TLS_KEY", default: "", help: "PEM file of the private key of --tls-cert" },
  {
    key: "tlsClientCa",
    kind: "string",
    flag: "--tls-client-ca",
    env: "PIPEWRIGHT_TLS_CLIENT_CA",
    default: "",
    help: "PEM file of the CA(s) that sign client certificates: mTLS, every client and worker must present one (needs --tls-cert)",
  },
  {
    key: "insecure",
    kind: "boolean",
    flag: "--insecure",
    env: "PIPEWRIGHT_INSECURE",
    default: "false",
    help: "listen on a non-loopback address without TLS, or without tokens or client certificates, all the same (refused otherwise)",
  },
  { key: "databaseUrl", kind: "string", flag: "--database-url", env: "DATABASE_URL", default: "", help: "PostgreSQL URL; unset: start an embedded PostgreSQL" },
  { key: "dataDir", kind: "string", flag: "--data-dir", env: "PIPEWRIGHT_DATA_DIR", default: ".pipewright/db", help: "data folder of the embedded PostgreSQL" },
  {
    key: "embeddedPort",
    kind: "integer",
    flag: "--embedded-port",
    env: "PIPEWRIGHT_EMBEDDED_PORT",
    default: "0",
    help: "port of the embedded PostgreSQL (0: a free port)",
  },
  {
    key: "maxTasksPerRun",
    kind: "integer",
    flag: "--max-tasks-per-run",
    env: "PIPEWRIGHT_MAX_TASKS_PER_RUN",
    default: "500000",
    help: "most task steps one run may hold, child pipelines included",
  },
  {
    key: "maxRequestMessages",
    kind: "integer",
    flag: "--max-request-messages",
    env: "PIPEWRIGHT_MAX_REQUEST_MESSAGES",
    default: "2000000",
    help: "most protobuf messages one request may hold (bounds the memory decoding it takes)",
  },
  {
    key: "maxMessagesInFlight",
    kind: "integer",
    flag: "--max-messages-in-flight",
    env: "PIPEWRIGHT_MAX_MESSAGES_IN_FLIGHT",
    default: "4000000",
    help: "most messages of submit requests being handled at once, all clients together (more: RESOURCE_EXHAUSTED, retry)",
  },
  { key: "maxDepth", kind: "integer", flag: "--max-depth", env: "PIPEWRIGHT_MAX_DEPTH", default: "10000", help: "deepest nesting of child pipelines" },
  {
    key: "defaultMaxAttempts",
    kind: "integer",
    flag: "--default-max-attempts",
    env: "PIPEWRIGHT_DEFAULT_MAX_ATTEMPTS",
    default: "1",
    help: "attempts of tasks that set no retry policy (1: no retry)",
  },
  {
    key: "heartbeatIntervalMs",
    kind: "integer",
    flag: "--heartbeat-interval-ms",
    env: "PIPEWRIGHT_HEARTBEAT_INTERVAL_MS",
    default: "5000",
    help: "how often workers must send a heartbeat",
  },
  {
    key: "defaultWaitTimeoutMs",
    kind: "integer",
    flag: "--default-wait-timeout-ms",
    env: "PIPEWRIGHT_DEFAULT_WAIT_TIMEOUT_MS",
    default: "0",
    help: "longest wait for a worker, for tasks that set none (0: none)",
  },
  {
    key: "defaultExecutionTimeoutMs",
    kind: "integer",
    flag: "--default-execution-timeout-ms",
    env: "PIPEWRIGHT_DEFAULT_EXECUTION_TIMEOUT_MS",
    default: "0",
    help: "longest run of one attempt, for tasks that set none (0: none)",
  },
  {
    key: "defaultHeartbeatTimeoutMs",
    kind: "integer",
    flag: "--default-heartbeat-timeout-ms",
    env: "PIPEWRIGHT_DEFAULT_HEARTBEAT_TIMEOUT_MS",
    default: "0",
    help: "longest silence about one attempt, for tasks that set none (0: none; a silent worker is still dropped after 3 heartbeat intervals)",
  },
  {
    key: "maxLostAttempts",
    kind: "integer",
    flag: "--max-lost-attempts",
    env: "PIPEWRIGHT_MAX_LOST_ATTEMPTS",
    default: "5",
    help: "times an attempt is re-queued after its worker or server died before it fails with pipewright.WorkerLost",
  },
  { key: "leaseMs", kind: "integer", flag: "--lease-ms", env: "PIPEWRIGHT_LEASE_MS", default: "30000", help: "lease of an attempt, renewed by heartbeats" },
  {
    key: "processTimeoutMs",
    kind: "integer",
    flag: "--process-timeout-ms",
    env: "PIPEWRIGHT_PROCESS_TIMEOUT_MS",
    default: "10000",
    help: "a server process silent this long is dead: its attempts are re-queued",
  },
  {
    key: "remoteWaitPollMs",
    kind: "integer",
    flag: "--remote-wait-poll-ms",
    env: "PIPEWRIGHT_REMOTE_WAIT_POLL_MS",
    default: "1000",
    help: "a wait on a run another server process owns also looks at the database this often (the owner announces the end; this catches a missed announcement)",
  },
  {
    key: "parkWaitsOverMs",
    kind: "integer",
    flag: "--park-waits-over-ms",
    env: "PIPEWRIGHT_PARK_WAITS_OVER_MS",
    default: "30000",
    help: "a run that has only waited (a sleep, a signal, an event) this long, with nothing due sooner, leaves memory, and comes back from the database when due or signalled (0: never)",
  },
  {
    key: "drainGraceMs",
    kind: "integer",
    flag: "--drain-grace-ms",
    env: "PIPEWRIGHT_DRAIN_GRACE_MS",
    default: "10000",
    help: "how long shutdown waits for workers to finish",
  },
  {
    key: "circuitBreakerThreshold",
    kind: "integer",
    flag: "--circuit-breaker-threshold",
    env: "PIPEWRIGHT_CIRCUIT_BREAKER_THRESHOLD",
    default: "0",
    help: "failures in a row that open a task's circuit (0: off)",
  },
  {
    key: "circuitBreakerCooldownMs",
    kind: "integer",
    flag: "--circuit-breaker-cooldown-ms",
    env: "PIPEWRIGHT_CIRCUIT_BREAKER_COOLDOWN_MS",
    default: "30000",
    help: "how long an open circuit waits before one probe attempt",
  },
  {
    key: "retentionHours",
    kind: "integer",
    flag: "--retention-hours",
    env: "PIPEWRIGHT_RETENTION_HOURS",
    default: "720",
    help: "finished runs older than this many hours are deleted with their events, by any server process, every minute (720: 30 days; 0: kept forever)",
  },
  {
    key: "tokensFile",
    kind: "string",
    flag: "--tokens-file",
    env: "PIPEWRIGHT_TOKENS_FILE",
    default: "",
    help: "file of tokens callers must present (one a line: NAME SCOPES sha256:HASH [NAMESPACES]; pipewright token create), re-read when it changes; unset, and no admin token: no auth",
  },
  {
    key: "adminToken",
    kind: "string",
    flag: "--admin-token",
    env: "PIPEWRIGHT_ADMIN_TOKEN",
    default: "",
    help: "a token with every scope (set it in the environment: a flag shows in the process list); unset, and no tokens file: no auth",
  },
  { key: "poolSize", kind: "integer", flag: "--pool-size", env: "PIPEWRIGHT_POOL_SIZE", default: "10", help: "database connections of this process" },
  {
    key: "logLevel",
    kind: "choice",
    choices: LOG_LEVELS,
    flag: "--log-level",
    env: "PIPEWRIGHT_LOG_LEVEL",
    default: "info",
    help: "lowest level logged: trace, debug, info, warn, error, fatal or silent (README: Logs)",
  },
  {
    key: "logFormat",
    kind: "choice",
    choices: LOG_FORMATS,
    flag: "--log-format",
    env: "PIPEWRIGHT_LOG_FORMAT",
    default: "auto",
    help: "auto (pretty on a terminal, JSON lines otherwise), json or pretty",
  },
  { key: "verbose", kind: "boolean", flag: "--verbose", env: "PIPEWRIGHT_VERBOSE", default: "false", help: "same as --log-level debug" },
];

export const DEFAULT_CONFIG: ServerConfig = parseConfig([], {});

/** Reads flags (`--name value` or `--name=value`) and environment variables. */
export function parseConfig(argv: string[], env: Record<string, string | undefined>): ServerConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(arg)}; see --help`);
    const eq = arg.indexOf("=");
    if (eq > 0) flags.set(arg.slice(0, eq), arg.slice(eq + 1));
    else if (OPTIONS.find((o) => o.flag === arg)?.kind === "boolean" || arg === "--help") flags.set(arg, "true");
    else flags.set(arg, argv[++i] ?? "");
  }
  const out: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    const raw = flags.get(o.flag) ?? env[o.env] ?? o.default;
    flags.delete(o.flag);
    if (o.kind === "string") out[o.key] = raw;
    else if (o.kind === "choice") {
      if (!o.choices!.includes(raw)) throw new Error(`${o.flag} / ${o.env} must be one of ${o.choices!.join(", ")}, got ${JSON.stringify(raw)}`);
      out[o.key] = raw;
    } else if (o.kind === "boolean") out[o.key] = raw === "true" || raw === "1";
    else {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${o.flag} / ${o.env} must be a non-negative integer, got ${JSON.stringify(raw)}`);
      out[o.key] = n;
    }
  }
  flags.delete("--help");
  if (flags.size) throw new Error(`unknown option ${[...flags.keys()].join(", ")}; see --help`);
  return out as unknown as ServerConfig;
}
