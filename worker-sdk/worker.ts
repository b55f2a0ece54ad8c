// The Worker: connects to a Pipewright server over one bidirectional stream,
// says which tasks it serves and how many it runs at once, runs what it is
// given, sends results, heartbeats while tasks run, and reconnects with
// backoff when the server goes away. States: IDLE -> RUNNING -> DRAINING ->
// STOPPED (proto/PROTOCOL.md describes the stream).

import { randomUUID } from "node:crypto";
import os from "node:os";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  ConnectRequestSchema,
  DrainNoticeSchema,
  HeartbeatSchema,
  HelloSchema,
  TaskProgressSchema,
  TaskResultSchema,
  TaskResultsSchema,
  WorkerService,
  type ConnectRequest,
  type ConnectResponse,
  type TaskAssignment,
  type TaskKey,
  type TaskResult,
} from "@pipewright/protocol";
import { channelCredentials, createClient, type Client } from "@pipewright/protocol";
import { setLongTimeout } from "@pipewright/protocol";
import { ErrorTypes, PROTOCOL_VERSION } from "@pipewright/protocol";
import { MAX_PACKED_MESSAGE_BYTES } from "@pipewright/protocol";
import { TaskErrorSchema } from "@pipewright/protocol";
import { encodeValue } from "@pipewright/protocol";
import { context } from "@opentelemetry/api";
import { invokeTask, type AttemptResult } from "./invoke-task.js";
import { resultSize, sendable } from "./sendable-result.js";
import { endTaskSpan, startTaskSpan } from "./task-span.js";
import type { TaskDefinition } from "./task.js";
import type { WorkerOptions } from "./worker-options.js";
import { TaskEvents } from "./task-events.js";

export type { WorkerOptions };
import { optionalMs } from "@pipewright/protocol";

export type WorkerState = "idle" | "running" | "draining" | "stopped";

interface Running {
  key: TaskKey;
  controller: AbortController;
  progress?: unknown;
}

type Stream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;

/**
 * @example
 *   const worker = new Worker({ tasks: [multiply, divide], slots: 8 });
 *   await worker.start();               // resolves once the server welcomed it
 *   process.on("SIGTERM", () => worker.stop().then(() => process.exit(0)));
 */
export class Worker {
  state: WorkerState = "idle";
  /** Session id given by the server for the current connection. */
  workerId = "";
  private readonly tasks: Map<string, TaskDefinition<any, any>>;
  private readonly addresses: string[];
  private readonly credentials: grpc.ChannelCredentials;
  private readonly token?: string;
  private readonly namespace?: string;
  private next = 0;
  private client: Client<typeof WorkerService>;
  /** Task code's publishEvent calls, on the worker's current server address. */
  private readonly events: TaskEvents;
  private readonly instanceId = randomUUID();
  private readonly log: (line: string) => void;
  private stream?: Stream;
  private readonly running = new Map<string, Running>();
  private outbox: TaskResult[] = [];
  private flushScheduled = false;
  private heartbeatTimer?: NodeJS.Timeout;
  private heartbeatMs = 5000;
  private started?: { resolve: () => void; reject: (e: Error) => void };
  private stopped?: () => void;
  private serverDraining = false;
  /** Why the last connection attempt ended, for the log. */
  private lastError = "";
  /** Attempts completed since start (for tests and monitoring). */
  completed = 0;

  constructor(private readonly options: WorkerOptions) {
    if (options.tasks.length === 0) throw new Error("a Worker needs at least one task");
    this.tasks = new Map(options.tasks.map((t) => [t.name, t]));
    const given = options.address ?? process.env.PIPEWRIGHT_ADDRESS ?? "127.0.0.1:50051";
    this.addresses = (Array.isArray(given) ? given : given.split(",")).map((a) => a.trim()).filter(Boolean);
    this.next = Math.floor(Math.random() * this.addresses.length); // spread workers over the servers
    this.credentials = channelCredentials(options.tls);
    this.token = options.token ?? process.env.PIPEWRIGHT_TOKEN;
    this.namespace = options.namespace ?? process.env.PIPEWRIGHT_NAMESPACE;
    this.client = createClient(WorkerService, this.addresses[this.next], { credentials: this.credentials, token: this.token, namespace: this.namespace });
    this.events = new TaskEvents({ credentials: this.credentials, token: this.token, namespace: this.namespace });
    // By default, what a worker does (connected, disconnected, cannot reach the server) goes to stderr.
    this.log = options.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} pipewright worker: ${line}\n`));
  }

  /** Connects; resolves at the first welcome (and keeps reconnecting after that). */
  start(): Promise<void> {
    if (this.state !== "idle") throw new Error(`worker already ${this.state}`);
    this.state = "running";
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      void this.connectLoop();
    });
  }

  /**
   * Drains: takes nothing new, lets running attempts finish and sends their
   * results, then closes the stream. No attempt is lost or run twice.
   */
  async stop(): Promise<void> {
    if (this.state === "stopped" || this.state === "idle") {
      this.state = "stopped";
      this.client.close();
      this.events.close();
      return;
    }
    this.state = "draining";
    this.send(create(ConnectRequestSchema, { kind: { case: "drain", value: create(DrainNoticeSchema, { reason: "worker stopping" }) } }));
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      this.maybeFinishDrain();
    });
  }

  get runningCount(): number {
    return this.running.size;
  }

  // ---- connection --------------------------------------------------------------

  private async connectLoop(): Promise<void> {
    const { initial, max } = this.options.reconnectDelayMs ?? { initial: 100, max: 1000 };
    let delay = initial;
    let failingSince: number | undefined;
    let toldAt = 0;
    while (this.state === "running" || (this.state === "draining" && this.running.size > 0 && !this.stream)) {
      const address = this.addresses[this.next];
      const welcomed = await this.session();
      if ((this.state as WorkerState) === "stopped") return;
      if (welcomed) failingSince = undefined;
      else {
        // Say so when the server cannot be reached, then every 30 s while it lasts: a
        // worker retrying in silence looks like one that works.
        const now = Date.now();
        failingSince ??= now;
        if (now - toldAt >= 30_000) {
          toldAt = now;
          const since = now - failingSince > 1000 ? ` for ${Math.round((now - failingSince) / 1000)} s` : "";
          this.log(`cannot reach the Pipewright server at ${address}${since}: ${this.lastError || "no answer"}; retrying`);
        }
      }
      this.rotate();
      if (welcomed) delay = initial;
      if (this.state !== "running") break;
      const wait = delay * (0.5 + Math.random() / 2);
      delay = Math.min(max, delay * 2);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** The client for the next address, when there are several. */
  private rotate(): void {
    if (this.addresses.length < 2) return;
    this.client.close();
    this.next = (this.next + 1) % this.addresses.length;
    this.client = createClient(WorkerService, this.addresses[this.next], { credentials: this.credentials, token: this.token, namespace: this.namespace });
  }

  /** One connection, until it ends. Resolves true if the server welcomed us. */
  private session(): Promise<boolean> {
    return new Promise((resolve) => {
      let welcomed = false;
      this.serverDraining = false;
      const stream = this.client.connect();
      this.stream = stream;
      const end = (why: string) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        clearInterval(this.heartbeatTimer);
        // The server re-queues what we held the moment the stream breaks:
        // stop it here rather than finish work someone else will redo.
        for (const r of this.running.values()) r.controller.abort(new Error(`connection lost: ${why}`));
        if (welcomed) this.log(`disconnected: ${why}`);
        resolve(welcomed);
        this.maybeFinishDrain();
      };
      stream.on("data", (msg: ConnectResponse) => {
        if (msg.kind.case === "welcome") {
          welcomed = true;
          this.workerId = msg.kind.value.workerId;
          const hb = msg.kind.value.heartbeatInterval;
          this.heartbeatMs = optionalMs(hb) ?? 5000;
          clearInterval(this.heartbeatTimer);
          this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
          this.heartbeatTimer.unref();
          this.log(`connected as ${this.workerId}`);
          this.started?.resolve();
          this.started = undefined;
          return;
        }
        this.onMessage(msg);
      });
      stream.on("error", (err: grpc.ServiceError) => {
        if (!welcomed && err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.CANCELLED && this.started) {
          // The server refused us (bad hello): retrying the same hello cannot help.
          this.started.reject(new Error(`server refused the worker: ${err.details}`));
          this.started = undefined;
          this.state = "stopped";
        }
        this.lastError = err.details || err.message;
        end(err.details || err.message);
      });
      stream.on("end", () => end("server closed the stream"));
      stream.on("close", () => end("stream closed"));
      stream.write(
        create(ConnectRequestSchema, {
          kind: {
            case: "hello",
            value: create(HelloSchema, {
              protocolVersion: PROTOCOL_VERSION,
              workerName: this.options.name ?? `${os.hostname()}:${process.pid}`,
              taskNames: [...this.tasks.keys()],
              queues: this.options.queues ?? [],
              slots: this.options.slots ?? 10,
              instanceId: this.instanceId,
            }),
          },
        }),
      );
    });
  }

  private onMessage(msg: ConnectResponse): void {
    switch (msg.kind.case) {
      case "assignments":
        for (const a of msg.kind.value.tasks) this.run(a);
        return;
      case "cancel":
        for (const key of msg.kind.value.keys) {
          const r = this.running.get(keyString(key));
          if (r && r.key.attempt === key.attempt) r.controller.abort(new Error(`cancelled: ${msg.kind.value.reason}`));
        }
        return;
      case "drain":
        // The server is going away: finish what we hold, then reconnect.
        this.serverDraining = true;
        this.maybeFinishDrain();
        return;
      default:
        return; // unknown messages from a newer server are ignored
    }
  }

  // ---- running attempts ------------------------------------------------------------

  private run(a: TaskAssignment): void {
    const key = a.key!;
    const k = keyString(key);
    const def = this.tasks.get(a.task);
    const controller = new AbortController();
    const entry: Running = { key, controller };
    this.running.set(k, entry);
    const startedAt = Date.now();
    const span = startTaskSpan(a);
    const execute = def
      ? context.with(span.context, invokeTask, undefined, def, {
          args: a.args,
          kwargs: a.kwargs,
          state: a.state,
          parentResults: a.parentResults?.entries,
          parentResultsMode: a.parentResultsMode,
          runId: key.runId,
          stepId: key.stepId,
          retryNumber: a.retryNumber,
          attempt: key.attempt,
          path: a.path,
          signal: controller.signal,
          heartbeat: (progress?: unknown) => {
            entry.progress = progress;
            this.heartbeat();
          },
          publishEvent: this.events.forAttempt(key.runId, a.path, () => this.addresses[this.next]),
        })
      : Promise.resolve<AttemptResult>({
          outcome: { case: "error" as const, value: { type: ErrorTypes.unknownTask, message: `this worker has no task ${a.task}` } as never },
          state: undefined,
        });
    // The server fails an attempt past its execution timeout; stop the work
    // here too. A task with a heartbeat timeout is heartbeated often enough.
    const executionMs = optionalMs(a.executionTimeout) || undefined; // 0: none
    const heartbeatMs = optionalMs(a.heartbeatTimeout) || undefined;
    let timedOut = false;
    const expire = () => {
      timedOut = true;
      controller.abort(new Error(`execution timeout of ${executionMs} ms`));
    };
    const deadline = executionMs ? setLongTimeout(expire, executionMs) : undefined;
    // A third of the timeout, within [50 ms, 1 min]: setInterval cannot take more than 24.8 days.
    const beat = heartbeatMs ? setInterval(() => this.heartbeat(), Math.min(60_000, Math.max(50, heartbeatMs / 3))) : undefined;
    execute.then((res) => {
      deadline?.clear();
      clearInterval(beat);
      this.running.delete(k);
      this.completed++;
      // Whatever the task did after its deadline, the attempt failed by timing out.
      const outcome = timedOut
        ? {
            case: "error" as const,
            value: create(TaskErrorSchema, {
              type: ErrorTypes.timeout,
              message: `attempt ${key.attempt} ran longer than its execution timeout of ${executionMs} ms`,
            }),
          }
        : res.outcome;
      endTaskSpan(span, outcome);
      this.queueResult(sendable(create(TaskResultSchema, { key, outcome, state: timedOut ? undefined : res.state, startTime: timestampFromMs(startedAt) })));
      this.maybeFinishDrain();
    });
  }

  /** Results finished in the same tick go out together, in messages of at most MAX_PACKED_MESSAGE_BYTES. */
  private queueResult(r: TaskResult): void {
    this.outbox.push(r);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        const queued = this.outbox;
        this.outbox = [];
        let results: TaskResult[] = [];
        let bytes = 0;
        const flush = () => {
          if (results.length) this.send(create(ConnectRequestSchema, { kind: { case: "results", value: create(TaskResultsSchema, { results }) } }));
          results = [];
          bytes = 0;
        };
        for (const r of queued) {
          const size = resultSize(r);
          if (results.length && bytes + size > MAX_PACKED_MESSAGE_BYTES) flush();
          results.push(r);
          bytes += size;
        }
        flush();
        this.maybeFinishDrain();
      });
    }
  }

  private heartbeat(): void {
    const running = [...this.running.values()].map((r) =>
      create(TaskProgressSchema, { key: r.key, progress: r.progress === undefined ? undefined : encodeValue(r.progress) }),
    );
    this.send(create(ConnectRequestSchema, { kind: { case: "heartbeat", value: create(HeartbeatSchema, { running }) } }));
  }

  private send(msg: ConnectRequest): void {
    const s = this.stream;
    if (s && !s.writableEnded) s.write(msg);
  }

  /** Ends the stream once draining and nothing is left to run or send. */
  private maybeFinishDrain(): void {
    const draining = this.state === "draining" || this.serverDraining;
    if (!draining || this.running.size > 0 || this.outbox.length > 0 || this.flushScheduled) return;
    if (this.stream && !this.stream.writableEnded) {
      this.stream.end();
      if (this.state === "running") return; // server drain: the connect loop reconnects
    }
    if (this.state === "draining") {
      this.state = "stopped";
      clearInterval(this.heartbeatTimer);
      this.client.close();
      this.events.close();
      this.stopped?.();
    }
  }
}

function keyString(k: TaskKey): string {
  return `${k.runId}/${k.stepId}`;
}
