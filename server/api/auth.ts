// Who may call what: every call of a pipewright service carries `authorization:
// Bearer <token>`, checked here, in a grpc-js server interceptor, when the call's
// headers arrive: before any byte of the request is read or decoded, for unary
// and streaming calls alike. Health and reflection stay open. Auth is on when
// tokens are configured (a tokens file, or PIPEWRIGHT_ADMIN_TOKEN); otherwise
// every call is let through (loopback use, and every test that sets none).
// A token also names the namespaces it may work in (namespace.ts): a call in
// another one is PERMISSION_DENIED like a missing scope.

import { readFileSync, unwatchFile, watchFile } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import type { ServerConfig } from "../config.js";
import type { Logger } from "../observe/logger.js";
import { callNamespace, GUARDED_PREFIX, namespaceRefusal } from "./namespace.js";
import { ALL_NAMESPACES, findToken, hashSecret, MIN_SECRET_LENGTH, parseTokensFile, SCOPES, type Scope, type Token } from "./tokens.js";

/**
 * The scope each method needs, by full method name. Exhaustive over the
 * services the server serves: `assertScopeTable` (run at every start, and by a
 * test over every generated service) fails on a method missing here.
 */
export const METHOD_SCOPES: Readonly<Record<string, Scope>> = {
  "pipewright.v1.RunService/SubmitRun": "submit",
  "pipewright.v1.RunService/BatchSubmitRuns": "submit",
  "pipewright.v1.RunService/GetRun": "read",
  "pipewright.v1.RunService/WaitRun": "read",
  "pipewright.v1.RunService/WaitRuns": "read",
  "pipewright.v1.RunService/WatchRun": "read",
  "pipewright.v1.RunService/ListRuns": "read",
  "pipewright.v1.RunService/CountRuns": "read",
  "pipewright.v1.RunService/ResubmitRun": "submit",
  "pipewright.v1.RunService/CancelRun": "control",
  "pipewright.v1.RunService/SignalRun": "control", // like cancel, pause and resume: it changes how a run goes on
  "pipewright.v1.RunService/PauseRun": "control",
  "pipewright.v1.RunService/ResumeRun": "control",
  "pipewright.v1.RunService/DeleteRun": "control",
  "pipewright.v1.WorkerService/Connect": "worker",
  // Schedules: creating, changing and firing one starts runs (submit); pausing, resuming and
  // deleting one stops or lets go of runs to come, as cancel and pause do for runs (control).
  "pipewright.v1.ScheduleService/CreateSchedule": "submit",
  "pipewright.v1.ScheduleService/UpdateSchedule": "submit",
  "pipewright.v1.ScheduleService/TriggerSchedule": "submit",
  "pipewright.v1.ScheduleService/GetSchedule": "read",
  "pipewright.v1.ScheduleService/ListSchedules": "read",
  "pipewright.v1.ScheduleService/ListScheduleFires": "read",
  "pipewright.v1.ScheduleService/PauseSchedule": "control",
  "pipewright.v1.ScheduleService/ResumeSchedule": "control",
  "pipewright.v1.ScheduleService/DeleteSchedule": "control",
  "pipewright.v1.AdminService/GetServerStatus": "admin",
  "pipewright.v1.AdminService/ListCircuitBreakers": "admin",
  "pipewright.v1.AdminService/ListWorkers": "admin",
  // Publishing starts runs (the triggers'), so it needs what SubmitRun needs; so does
  // creating, deleting, pausing and resuming a trigger: each decides which runs events start.
  "pipewright.v1.EventService/PublishEvent": "submit",
  "pipewright.v1.EventService/CreateTrigger": "submit",
  "pipewright.v1.EventService/DeleteTrigger": "submit",
  "pipewright.v1.EventService/PauseTrigger": "submit",
  "pipewright.v1.EventService/ResumeTrigger": "submit",
  "pipewright.v1.EventService/GetTrigger": "read",
  "pipewright.v1.EventService/ListTriggers": "read",
  "pipewright.v1.EventService/ListEvents": "read",
};

/** The same for a missing and an unknown token: nothing that helps guessing. */
export const UNAUTHENTICATED_DETAILS = "missing or invalid token";

/** Throws unless every method of `services` has its scope in METHOD_SCOPES. */
export function assertScopeTable(services: readonly DescService[]): void {
  const missing = services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)).filter((name) => !(name in METHOD_SCOPES));
  if (missing.length) throw new Error(`no scope for ${missing.join(", ")}: add them to METHOD_SCOPES in server/api/auth.ts`);
}

/** Whether the configuration turns token checks on (a tokens file, or the environment's admin token). */
export function authEnabled(config: Pick<ServerConfig, "tokensFile" | "adminToken">): boolean {
  return config.tokensFile !== "" || config.adminToken !== "";
}

export interface AuthOptions {
  tokensFile: string;
  adminToken: string;
  log: Logger;
  /** How often the tokens file is looked at for changes (fs.watchFile's interval). */
  pollMs?: number;
  /** Changes are read this long after the last one seen (an editor writes in several steps). */
  debounceMs?: number;
}

/** The tokens (re-read when the file changes) and the interceptor that checks calls against them. */
export class Auth {
  private fileTokens: Token[] = [];
  private readonly envTokens: Token[] = [];
  private timer?: NodeJS.Timeout;
  private watching = false;
  /** Calls refused since start, by status (for tests and the curious); `revoked`: calls ended when their token went. */
  readonly refused = { unauthenticated: 0, permissionDenied: 0, revoked: 0 };
  /** Calls let through and not ended yet, with what let them through: a reload ends those it no longer allows. */
  private readonly live = new Map<object, { method: string; metadata: grpc.Metadata; end: (refusal: grpc.StatusObject) => void }>();

  /** Reads the tokens file; throws (a start error) when it is missing or malformed. */
  constructor(private readonly options: AuthOptions) {
    if (options.adminToken) {
      if (options.adminToken.length < MIN_SECRET_LENGTH)
        throw new Error(`PIPEWRIGHT_ADMIN_TOKEN must be at least ${MIN_SECRET_LENGTH} characters (pipewright token create makes one)`);
      this.envTokens.push({ name: "admin (environment)", scopes: new Set(SCOPES), namespaces: ALL_NAMESPACES, hash: hashSecret(options.adminToken) });
    }
    if (options.tokensFile) {
      this.fileTokens = this.read();
      if (this.fileTokens.length === 0 && this.envTokens.length === 0)
        options.log.warn({ file: options.tokensFile }, `${options.tokensFile} holds no tokens: every call to a pipewright service is refused`);
    }
  }

  get tokenCount(): number {
    return this.fileTokens.length + this.envTokens.length;
  }

  private read(): Token[] {
    return parseTokensFile(readFileSync(this.options.tokensFile, "utf8"), this.options.tokensFile);
  }

  /** Re-reads the tokens file now; a malformed one keeps the tokens there were, and logs why. */
  reload(): void {
    try {
      this.fileTokens = this.read();
      this.options.log.info({ file: this.options.tokensFile, tokens: this.fileTokens.length }, `tokens file reloaded: ${this.fileTokens.length} tokens`);
      this.endRevoked();
    } catch (err) {
      this.options.log.error({ file: this.options.tokensFile, err }, `tokens file not reloaded, the previous tokens stay in force: ${(err as Error).message}`);
    }
  }

  /** Watches the tokens file: a change is read (debounced), so tokens are added and revoked without a restart. */
  watch(): void {
    if (!this.options.tokensFile || this.watching) return;
    this.watching = true;
    watchFile(this.options.tokensFile, { interval: this.options.pollMs ?? 1000, persistent: false }, () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(), this.options.debounceMs ?? 200);
    });
  }

  close(): void {
    clearTimeout(this.timer);
    if (this.watching) unwatchFile(this.options.tokensFile);
    this.watching = false;
  }

  /** Why a call of `method` ("/pkg.Service/Method") with these headers is refused; undefined: it may go on. Counted in `refused`. */
  check(method: string, metadata: grpc.Metadata): grpc.StatusObject | undefined {
    const refusal = this.verdict(method, metadata);
    if (refusal?.code === grpc.status.UNAUTHENTICATED) this.refused.unauthenticated++;
    if (refusal?.code === grpc.status.PERMISSION_DENIED) this.refused.permissionDenied++;
    return refusal;
  }

  /** `check` without counting. */
  private verdict(method: string, metadata: grpc.Metadata): grpc.StatusObject | undefined {
    if (!method.startsWith(GUARDED_PREFIX)) return undefined;
    const token = bearer(metadata);
    const found = token === undefined ? undefined : findToken([...this.fileTokens, ...this.envTokens], token);
    if (!found) {
      return { code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS, metadata: new grpc.Metadata() };
    }
    const malformed = namespaceRefusal(metadata);
    if (malformed) return malformed;
    const scope = METHOD_SCOPES[method.slice(1)];
    const namespace = callNamespace(metadata);
    let details: string | undefined;
    if (!scope) details = `${method.slice(1)} is open to no token`;
    else if (!found.scopes.has(scope)) details = `this token lacks the scope ${scope}, which ${method.slice(1)} needs`;
    else if (found.namespaces !== ALL_NAMESPACES && !found.namespaces.has(namespace)) details = `this token is not allowed in the namespace ${namespace}`;
    if (details === undefined) return undefined;
    return { code: grpc.status.PERMISSION_DENIED, details, metadata: new grpc.Metadata() };
  }

  /**
   * Whether an HTTP request with this `authorization` header may read the
   * metrics (a token with the `metrics` scope; namespaces do not apply: the
   * metrics are the whole server's). 401 and 403 as HTTP says.
   */
  checkMetrics(authorization: string | undefined): "ok" | 401 | 403 {
    const token = authorization === undefined ? undefined : bearerOf(authorization);
    const found = token === undefined ? undefined : findToken([...this.fileTokens, ...this.envTokens], token);
    if (!found) {
      this.refused.unauthenticated++;
      return 401;
    }
    if (found.scopes.has("metrics")) return "ok";
    this.refused.permissionDenied++;
    return 403;
  }

  /**
   * Ends the calls still running whose token no longer allows them (deleted
   * from the file, or its scopes or namespaces narrowed): a worker's stream,
   * a WatchRun, a long WaitRun. They end UNAUTHENTICATED or PERMISSION_DENIED
   * as a new call with that token would; a worker's attempts are re-queued as
   * at any disconnect.
   */
  private endRevoked(): void {
    for (const [key, c] of this.live) {
      const refusal = this.verdict(c.method, c.metadata);
      if (!refusal) continue;
      this.live.delete(key);
      this.refused.revoked++;
      this.options.log.warn({ method: c.method.slice(1) }, `ended a ${c.method.slice(1)} call: its token was revoked or narrowed`);
      c.end(refusal);
    }
  }

  /**
   * Keeps a call let through in view until `forget` is called: if its token
   * goes (or no longer allows it) while it runs, `end` is called with the
   * status a new call would get. The gRPC interceptor and the JSON gateway's
   * streams use it.
   */
  track(method: string, metadata: grpc.Metadata, end: (refusal: grpc.StatusObject) => void): () => void {
    const key = {};
    this.live.set(key, { method, metadata, end });
    return () => this.live.delete(key);
  }

  /** The server interceptor: refuses a call as its headers arrive, before the handler starts or any request is decoded. */
  readonly interceptor: grpc.ServerInterceptor = (descriptor, call) => {
    let forget = () => {};
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const refusal = this.check(descriptor.path, metadata);
            if (refusal) return call.sendStatus(refusal);
            if (descriptor.path.startsWith(GUARDED_PREFIX)) forget = this.track(descriptor.path, metadata, (status) => call.sendStatus(status));
            pass(metadata);
          },
          onCancel: () => forget(),
        }),
      sendStatus: (status, next) => {
        forget();
        next(status);
      },
    });
  };
}

/** The token of `authorization: Bearer <token>`, if the header is there and well formed. */
function bearer(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get("authorization");
  if (values.length !== 1 || typeof values[0] !== "string") return undefined;
  return bearerOf(values[0]);
}

function bearerOf(header: string): string | undefined {
  return /^Bearer ([\x21-\x7e]+)$/i.exec(header.trim())?.[1];
}
