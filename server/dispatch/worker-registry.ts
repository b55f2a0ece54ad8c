// The worker sessions of this process: the Connect stream's handshake (a
// checked hello, answered with welcome), the sessions it opens and closes,
// and what they serve, here and (as of their last heartbeat) at the other
// server processes. What a session sends after its hello goes to the
// dispatcher through SessionEvents. proto/PROTOCOL.md is the contract.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import {
  ConnectRequestSchema,
  DEFAULT_NAMESPACE,
  QUEUE_NAME_CONTROL,
  ConnectResponseSchema,
  fieldBytes,
  PROTOCOL_VERSION,
  receivedBytes,
  RefusedMessageError,
  TaskResultsSchema,
  WelcomeSchema,
  type ConnectRequest,
  type ConnectResponse,
  type Hello,
  type TaskProgress,
  type TaskResult,
  type Value,
} from "@pipewright/protocol";
import { PipewrightError } from "../core/errors.js";
import type { Sql } from "../store/database.js";
import { servedElsewhere, type Served } from "../store/process-registry.js";
import { normalizeQueue } from "@pipewright/protocol";
import { queueNames, WorkerSession } from "./worker-session.js";
import type { Logger } from "../observe/logger.js";

const MAX_SLOTS = 10_000;
// Where a results message's results sit in its received bytes: each result's
// bytes are kept as received rather than encoded again.
const RESULTS_FIELD = ConnectRequestSchema.field.results.number;
const RESULT_FIELD = TaskResultsSchema.field.results.number;
/** PROTOCOL.md rule 1: a stream that says nothing is not a worker. */
const HELLO_TIMEOUT_MS = 10_000;

/** What sessions tell the dispatcher. */
export interface SessionEvents {
  /** A session was opened (it has free slots). */
  opened(session: WorkerSession): void;
  /** Results, with each one's bytes as received when they could be cut out. */
  results(session: WorkerSession, results: TaskResult[], raw?: Uint8Array[]): void;
  heartbeat(session: WorkerSession, running: TaskProgress[]): void;
  /**
   * A session ended (already out of the registry): what it held must go back. `drained`:
   * it was draining (the worker or the server asked it to stop), not lost.
   */
  closed(session: WorkerSession, drained: boolean): Promise<void>;
}

export interface WorkerRegistryConfig {
  processId: string;
  heartbeatIntervalMs: number;
  log: Logger;
}

export class WorkerRegistry {
  private readonly sessions = new Map<string, WorkerSession>();
  private servedElsewhere = new Set<string>();
  private drainingAll = false;

  constructor(
    private readonly sql: Sql,
    private readonly config: WorkerRegistryConfig,
    private readonly events: SessionEvents,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Set by stopAccepting: no session is opened or given new work any more. */
  get draining(): boolean {
    return this.drainingAll;
  }

  get(id: string): WorkerSession | undefined {
    return this.sessions.get(id);
  }

  /** The open sessions, in the order they connected (live: copy it to iterate across an await). */
  all(): IterableIterator<WorkerSession> {
    return this.sessions.values();
  }

  /** The connected sessions, oldest first (AdminService.ListWorkers). */
  workers(): WorkerSession[] {
    return [...this.sessions.values()].sort((a, b) => a.connectedAt - b.connectedAt);
  }

  /** What the workers connected here serve (written with the process's heartbeat). */
  served(): Served[] {
    const keys = new Map<string, Served>();
    for (const s of this.sessions.values()) for (const t of s.tasks) for (const q of s.queues) keys.set(JSON.stringify([t, q]), [t, q]);
    return [...keys.values()];
  }

  /**
   * Whether a connected worker, here or at another process, serves `task`
   * on the queue of this key (core/queue-keys.ts) (other processes' workers as of their last heartbeat, read
   * at most every 2 s).
   */
  serves(task: string, key: string): boolean {
    const q = normalizeQueue(key);
    for (const s of this.sessions.values()) if (s.serves(task, q)) return true;
    return this.servedElsewhere.has(JSON.stringify([task, q]));
  }

  async refreshServedElsewhere(): Promise<void> {
    this.servedElsewhere = new Set(
      (await servedElsewhere(this.sql, this.config.processId, this.config.heartbeatIntervalMs * 4 + 10_000)).map((s) => JSON.stringify(s)),
    );
  }

  /** The latest progress reported for running steps of a run, by step (held by this process's workers). */
  progressOf(runId: number): Map<number, Value> {
    const out = new Map<number, Value>();
    for (const s of this.sessions.values()) for (const h of s.held.values()) if (h.runId === runId && h.progress) out.set(h.step, h.progress);
    return out;
  }

  /** Serves one Connect call until it ends. */
  async connect(call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>, namespace = DEFAULT_NAMESPACE): Promise<void> {
    const iterator = call[Symbol.asyncIterator]();
    const first = await Promise.race([iterator.next(), new Promise<"timeout">((r) => setTimeout(() => r("timeout"), HELLO_TIMEOUT_MS).unref())]);
    if (first === "timeout" || first.done) throw new PipewrightError("INVALID_ARGUMENT", "a worker must send hello first, within 10 s");
    const msg = first.value as ConnectRequest;
    if (msg.kind.case !== "hello") throw new PipewrightError("INVALID_ARGUMENT", `the first message must be hello, got ${msg.kind.case ?? "nothing"}`);
    if (this.drainingAll) throw new PipewrightError("UNAVAILABLE", "the server is shutting down; connect again later");
    const hello = msg.kind.value;
    checkHello(hello);
    const session = new WorkerSession(randomUUID(), hello, call, namespace);
    this.sessions.set(session.id, session);
    session.write(
      create(ConnectResponseSchema, {
        kind: {
          case: "welcome",
          value: create(WelcomeSchema, {
            workerId: session.id,
            heartbeatInterval: durationFromMs(this.config.heartbeatIntervalMs),
            protocolVersion: PROTOCOL_VERSION,
          }),
        },
      }),
    );
    this.config.log.info(
      { worker_id: session.id, namespace, worker_name: hello.workerName, queues: queueNames(session), slots: hello.slots, tasks: hello.taskNames },
      `worker ${session.id} connected${namespace === DEFAULT_NAMESPACE ? "" : ` in namespace ${namespace}`}: ${hello.workerName || "unnamed"}, ${hello.slots} slots, tasks ${hello.taskNames.join(",")}`,
    );
    this.events.opened(session);
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } catch (err) {
          // A message refused before decoding ends the session with its status (the
          // worker's attempts are re-queued like at any disconnect).
          if (err instanceof RefusedMessageError) throw err;
          break; // the stream broke (worker crashed or cancelled): a disconnect like any other
        }
        if (next.done) break;
        this.handle(session, next.value as ConnectRequest);
      }
    } finally {
      await this.close(session);
    }
  }

  private handle(session: WorkerSession, msg: ConnectRequest): void {
    session.lastSeen = Date.now();
    switch (msg.kind.case) {
      case "results": {
        // Each result's bytes as received become its event's body, unencoded again.
        const raw = receivedBytes(msg);
        const container = raw ? fieldBytes(raw, RESULTS_FIELD)[0] : undefined;
        this.events.results(session, msg.kind.value.results, container ? fieldBytes(container, RESULT_FIELD) : undefined);
        return;
      }
      case "heartbeat":
        this.events.heartbeat(session, msg.kind.value.running);
        return;
      case "drain":
        session.state = "draining";
        return;
      case "hello":
        this.config.log.warn({ worker_id: session.id }, `worker ${session.id} sent a second hello; ignored`);
        return;
      default:
        this.config.log.warn({ worker_id: session.id }, `worker ${session.id} sent an unknown message; ignored`);
    }
  }

  /** Ends a session on this side (its stream ended, or it went silent); once only. */
  async close(session: WorkerSession): Promise<void> {
    if (session.state === "closed") return;
    const drained = session.state === "draining";
    session.state = "closed";
    this.sessions.delete(session.id);
    await this.events.closed(session, drained);
  }

  /** Closes the sessions that sent nothing for three heartbeat intervals (a worker that hangs keeps its stream open). */
  closeSilent(now = Date.now()): void {
    const silentAfter = this.config.heartbeatIntervalMs * 3;
    for (const s of this.sessions.values()) {
      if (now - s.lastSeen > silentAfter) {
        this.config.log.warn({ worker_id: s.id, silent_ms: now - s.lastSeen }, `worker ${s.id} silent for ${now - s.lastSeen} ms; closing its session`);
        void this.close(s);
      }
    }
  }

  /** From now on no session opens, and none is given new work (drain). */
  stopAccepting(): void {
    this.drainingAll = true;
  }
}

function checkHello(h: Hello): void {
  const problems: string[] = [];
  if (h.protocolVersion !== PROTOCOL_VERSION) problems.push(`protocol_version: this server speaks ${PROTOCOL_VERSION}, got ${h.protocolVersion}`);
  if (h.taskNames.length === 0) problems.push("task_names: must not be empty");
  if (h.slots < 1 || h.slots > MAX_SLOTS) problems.push(`slots: must be between 1 and ${MAX_SLOTS}, got ${h.slots}`);
  h.queues.forEach((q, i) => {
    if (normalizeQueue(q).length > 200) problems.push(`queues[${i}]: must be at most 200 characters`);
    if (QUEUE_NAME_CONTROL.test(q)) problems.push(`queues[${i}]: must hold no control characters`);
  });
  if (problems.length) {
    const code = h.protocolVersion !== PROTOCOL_VERSION ? "FAILED_PRECONDITION" : "INVALID_ARGUMENT";
    throw new PipewrightError(code, `invalid hello: ${problems.join("; ")}`);
  }
}
