// The TypeScript client: submit pipelines, wait for results, read, watch and
// control runs.

import { randomUUID } from "node:crypto";
import { durationFromMs, timestampFromDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { context, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { RunState, SignalDelivery, type Run, type RunEvent, type WaitRunResponse } from "@pipewright/protocol";
import { EventService, RunService, RunView } from "@pipewright/protocol";
import { Events, Triggers } from "./events.js";
import { createClient, type Client, type TlsOptions } from "@pipewright/protocol";
import type { Pipeline } from "./pipeline-builder.js";
import { decodeError, decodeValue, encodeValue, type RemoteError } from "@pipewright/protocol";
import { CallError, retryLater, withCallErrors } from "./call-errors.js";
import { injectTraceContext } from "./trace-context.js";
import { Schedules } from "./schedules.js";

const tracer = trace.getTracer("@pipewright/client", "0.1.0");

/** How long RunHandle.wait keeps trying while the server cannot be reached, in a row. */
export const UNREACHABLE_GIVE_UP_MS = 5 * 60_000;

export interface SubmitOptions {
  /** Idempotency key: resubmitting it returns the same run. Default: a fresh UUID. */
  requestId?: string;
  /** Display name of the run. */
  name?: string;
  /** Fail the run if it has not finished this long after it started. */
  runTimeoutMs?: number;
  /** Delayed start: nothing of the run is dispatched before this time (at most 366 days ahead). */
  startAt?: Date;
  /** Delayed start: this many milliseconds after submission. Give startAt or startDelayMs, not both. */
  startDelayMs?: number;
}

/** The start fields of a submit request from its options. */
function startFields(o: SubmitOptions): { startTime?: Timestamp; startDelay?: Duration } {
  return {
    startTime: o.startAt ? timestampFromDate(o.startAt) : undefined,
    startDelay: o.startDelayMs !== undefined ? durationFromMs(o.startDelayMs) : undefined,
  };
}

export interface ClientOptions {
  /** The token sent with every call (scopes submit, read, control as the calls need). Default: PIPEWRIGHT_TOKEN; unset: none. */
  token?: string;
  /** The namespace this client works in: its runs are created, listed, read and controlled there. Default: PIPEWRIGHT_NAMESPACE, or the server's default namespace. */
  namespace?: string;
  /** TLS to the server (PEM strings or Buffers): `ca` that signed its certificate; for mTLS this client's `cert` and `key`. Default: PIPEWRIGHT_TLS_CA/_CERT/_KEY files; none: plaintext. */
  tls?: TlsOptions;
}

/** Thrown by `result()` when the run failed or was cancelled. */
export class RunFailedError extends Error {
  constructor(
    readonly run: Run,
    readonly error: RemoteError,
  ) {
    super(`run ${run.id} ${RunState[run.state].toLowerCase()}: ${error.type}: ${error.message}`);
    this.name = "RunFailedError";
  }
}

/**
 * @example
 *   const client = new PipewrightClient();
 *   const run = await client.submit(multiply.send(3, 2).continueWith(divide, 2));
 *   console.log(await run.result()); // 3
 */
export class PipewrightClient {
  /** The raw typed gRPC client, for anything this class does not wrap (its errors are gRPC's own). */
  readonly rpc: Client<typeof RunService>;
  /** The same calls, failing with CallError (ServerUnavailableError when the server cannot be reached). */
  readonly calls: Client<typeof RunService>;
  /** Schedules: pipelines started on a cron schedule (client/schedules.ts). */
  readonly schedules: Schedules;
  /** Publish events (and list recent ones); `triggers`: what events start (README: Events and triggers). */
  readonly events: Events;
  readonly triggers: Triggers;
  private readonly eventRpc: Client<typeof EventService>;

  /**
   * `options.token`: sent with every call (`authorization: Bearer …`) to a server that checks
   * tokens; default PIPEWRIGHT_TOKEN (README: Security / Tokens). `options.tls`: TLS to the
   * server, `ca` (PEM) that signed its certificate and for mTLS this client's `cert` and
   * `key`; default: the files named by PIPEWRIGHT_TLS_CA, PIPEWRIGHT_TLS_CERT and
   * PIPEWRIGHT_TLS_KEY, or plaintext when none is set (README: Security / TLS).
   */
  constructor(
    readonly address = process.env.PIPEWRIGHT_ADDRESS ?? "127.0.0.1:50051",
    options: ClientOptions = {},
  ) {
    this.rpc = createClient(RunService, address, {
      token: options.token ?? process.env.PIPEWRIGHT_TOKEN,
      namespace: options.namespace ?? process.env.PIPEWRIGHT_NAMESPACE,
      tls: options.tls,
    });
    this.calls = withCallErrors(this.rpc, address);
    this.eventRpc = createClient(EventService, address, {
      token: options.token ?? process.env.PIPEWRIGHT_TOKEN,
      namespace: options.namespace ?? process.env.PIPEWRIGHT_NAMESPACE,
      tls: options.tls,
    });
    const eventCalls = withCallErrors(this.eventRpc, address);
    [this.events, this.triggers] = [new Events(eventCalls), new Triggers(eventCalls)];
    this.schedules = new Schedules(address, {
      token: options.token ?? process.env.PIPEWRIGHT_TOKEN,
      namespace: options.namespace ?? process.env.PIPEWRIGHT_NAMESPACE,
      tls: options.tls,
    });
  }

  /**
   * Submits a pipeline (validated first, with the server's rules). Traced: a
   * span "pipewright submit" (CLIENT), a child of the active context, whose
   * context goes to the server in the call's metadata (W3C `traceparent`):
   * the run, its attempts and the workers' task spans join that trace.
   */
  async submit<R>(pipeline: Pipeline<R>, options: SubmitOptions = {}): Promise<RunHandle<R>> {
    // Built once: a try again after "retry later" sends the same request id, so it makes one run.
    const request = {
      requestId: options.requestId ?? randomUUID(),
      pipeline: pipeline.toProto(),
      name: options.name ?? "",
      runTimeout: options.runTimeoutMs ? durationFromMs(options.runTimeoutMs) : undefined,
      ...startFields(options),
    };
    const { run } = await traced(
      "SubmitRun",
      (metadata) => retryLater(() => this.calls.submitRun(request, { metadata })),
      (r, span) => span.setAttribute("pipewright.run.id", r.run!.id),
    );
    return new RunHandle<R>(this, run!.id);
  }

  /** Submits many pipelines in one call (all or none); traced as `submit` is. */
  async submitMany<R>(pipelines: Pipeline<R>[], options: Omit<SubmitOptions, "requestId"> = {}): Promise<RunHandle<R>[]> {
    const request = {
      requests: pipelines.map((p) => ({
        requestId: randomUUID(),
        pipeline: p.toProto(),
        name: options.name ?? "",
        runTimeout: options.runTimeoutMs ? durationFromMs(options.runTimeoutMs) : undefined,
        ...startFields(options),
      })),
    };
    const response = await traced(
      "BatchSubmitRuns",
      (metadata) => retryLater(() => this.calls.batchSubmitRuns(request, { metadata })),
      (r, span) => span.setAttribute("pipewright.runs", r.responses.length),
    );
    return response.responses.map((r) => new RunHandle<R>(this, r.run!.id));
  }

  /** Submits and waits for the result. */
  async submitAndWait<R>(pipeline: Pipeline<R>, options: SubmitOptions = {}): Promise<R> {
    return (await this.submit(pipeline, options)).result();
  }

  /**
   * Waits until every one of these runs has finished (a batch of WaitRuns
   * calls, 1000 runs each); returns them in order.
   */
  async waitAll(ids: string[], timeoutMs = Infinity): Promise<Run[]> {
    const until = Date.now() + timeoutMs;
    const out: Run[] = new Array(ids.length);
    const chunks: number[] = [];
    for (let i = 0; i < ids.length; i += 1000) chunks.push(i);
    await Promise.all(
      chunks.map(async (start) => {
        for (;;) {
          const left = Math.min(until - Date.now(), 60_000);
          const r = await this.calls.waitRuns({ runIds: ids.slice(start, start + 1000), timeout: durationFromMs(Math.max(1, left)) });
          r.runs.forEach((run, k) => (out[start + k] = run));
          if (r.done || Date.now() >= until) return;
        }
      }),
    );
    return out;
  }

  /** A handle on an existing run. */
  run<R = unknown>(id: string): RunHandle<R> {
    return new RunHandle<R>(this, id);
  }

  close(): void {
    this.rpc.close();
    this.schedules.close();
    this.eventRpc.close();
  }
}

export class RunHandle<R> {
  constructor(
    private readonly client: PipewrightClient,
    readonly id: string,
  ) {}

  /** Waits for the run to finish; returns its result or throws RunFailedError. */
  async result(timeoutMs = Infinity): Promise<R> {
    const run = await this.wait(timeoutMs);
    if (run.state < RunState.SUCCEEDED) throw new Error(`run ${this.id} did not finish within ${timeoutMs} ms`);
    const outcome = run.outcome?.kind;
    if (outcome?.case === "value") return decodeValue(outcome.value) as R;
    if (outcome?.case === "error") throw new RunFailedError(run, decodeError(outcome.value));
    throw new Error(`run ${this.id} finished without an outcome`);
  }

  /**
   * Waits until the run finishes or `timeoutMs` passes; returns the run. The
   * run is stored by the server, so a server restarting (or failing over to
   * another process) does not end the wait: while the server cannot be
   * reached, or ends the call as it stops, the wait tries again, backing off from 100 ms to 2 s, for at most
   * UNREACHABLE_GIVE_UP_MS in a row (then it throws the ServerUnavailableError).
   */
  async wait(timeoutMs = Infinity): Promise<Run> {
    const until = Date.now() + timeoutMs;
    let unreachableSince: number | undefined;
    for (let backoff = 100; ;) {
      const left = Math.min(until - Date.now(), 60_000);
      let response: WaitRunResponse;
      try {
        response = await this.client.calls.waitRun({ runId: this.id, timeout: durationFromMs(Math.max(1, left)) });
      } catch (err) {
        // UNAVAILABLE: not reachable, or shutting down; CANCELLED: the server went away mid-call
        // (this call takes no signal of the caller's, so nobody here cancelled it).
        if (!(err instanceof CallError) || (err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.CANCELLED)) throw err;
        unreachableSince ??= Date.now();
        if (Date.now() - unreachableSince > UNREACHABLE_GIVE_UP_MS || Date.now() + backoff >= until) throw err;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(2000, backoff * 2);
        continue;
      }
      unreachableSince = undefined;
      backoff = 100;
      if (response.done || Date.now() >= until) return response.run!;
    }
  }

  /** Reads the run; with `full`, every step's state. */
  async get(full = false): Promise<Run> {
    return (await this.client.calls.getRun({ runId: this.id, view: full ? RunView.FULL : RunView.BASIC })).run!;
  }

  /** The run's events: history, then live, ending when the run finishes. */
  watch(afterSeq = 0, signal?: AbortSignal): AsyncIterable<RunEvent> {
    const stream = this.client.calls.watchRun({ runId: this.id, afterSeq: BigInt(afterSeq) }, { signal });
    return (async function* () {
      for await (const r of stream) if (r.event) yield r.event;
    })();
  }

  async cancel(reason = ""): Promise<Run> {
    return (await this.client.calls.cancelRun({ runId: this.id, reason })).run!;
  }

  async pause(): Promise<Run> {
    return (await this.client.calls.pauseRun({ runId: this.id })).run!;
  }

  async resume(): Promise<Run> {
    return (await this.client.calls.resumeRun({ runId: this.id })).run!;
  }

  /**
   * Sends signal `name` to the run: the first of its steps waiting for it
   * (`waitForSignal(name)`) gets `payload` as its result; if none waits yet,
   * the signal is kept until one does. `signalId` makes a repeat (a webhook
   * delivered twice) count once. A finished run refuses it
   * (FAILED_PRECONDITION). `delivery`: what it did, when the server that
   * answered owns the run ("unknown" when another server process applied it).
   */
  async signal(
    name: string,
    payload?: unknown,
    options: { signalId?: string } = {},
  ): Promise<{ run: Run; delivery: "delivered" | "kept" | "duplicate" | "unknown" }> {
    const r = await this.client.calls.signalRun({
      runId: this.id,
      name,
      payload: payload === undefined ? undefined : encodeValue(payload),
      signalId: options.signalId ?? "",
    });
    const delivery = ({ [SignalDelivery.DELIVERED]: "delivered", [SignalDelivery.KEPT]: "kept", [SignalDelivery.DUPLICATE]: "duplicate" } as const)[
      r.delivery as 1 | 2 | 3
    ];
    return { run: r.run!, delivery: delivery ?? "unknown" };
  }

  /** Deletes the run with its events and stored payloads: finished runs only (an active one: FAILED_PRECONDITION, cancel it first). */
  async delete(): Promise<void> {
    await this.client.calls.deleteRun({ runId: this.id });
  }

  /** The final state decoded, once the run has finished. */
  async finalState(): Promise<unknown> {
    const run = await this.wait();
    return run.finalState ? decodeValue(run.finalState) : null;
  }
}

/**
 * A submit call in its "pipewright submit" span, the span's context in the
 * call's metadata. With no tracer provider registered the span records
 * nothing, and an active context the caller has still travels.
 */
async function traced<T>(method: string, call: (metadata: grpc.Metadata) => Promise<T>, done: (response: T, span: Span) => void): Promise<T> {
  const parent = context.active();
  const span = tracer.startSpan("pipewright submit", { kind: SpanKind.CLIENT }, parent);
  const recording = span.isRecording();
  if (recording) span.setAttributes({ "rpc.system": "grpc", "rpc.service": "pipewright.v1.RunService", "rpc.method": method });
  const metadata = new grpc.Metadata();
  injectTraceContext(trace.setSpan(parent, span), metadata, (m, k, v) => m.set(k, v));
  try {
    const response = await call(metadata);
    if (recording) done(response, span);
    return response;
  } catch (err) {
    if (recording) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
    }
    throw err;
  } finally {
    span.end();
  }
}
