// pipewright.v1.RunService: decode, validate, call the engine or the store,
// encode. No orchestration logic lives here.

import { create, fromBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { trace, type Tracer } from "@opentelemetry/api";
import {
  BatchSubmitRunsResponseSchema,
  BatchSubmitRunsRequestSchema,
  CancelRunResponseSchema,
  CountRunsResponseSchema,
  PipelineSchema,
  ResubmitRunResponseSchema,
  RunStateCountSchema,
  SubmitRunRequestSchema,
  DeleteRunResponseSchema,
  GetRunResponseSchema,
  ListRunsResponseSchema,
  PauseRunResponseSchema,
  ResumeRunResponseSchema,
  RunService,
  RunView,
  SignalDelivery,
  SignalRunResponseSchema,
  SubmitRunResponseSchema,
  WaitRunResponseSchema,
  waitNameProblem,
  type SignalRunRequest,
  type Violation,
  WaitRunsResponseSchema,
  WatchRunResponseSchema,
} from "@pipewright/protocol";
import { RunSchema, RunState, type Run } from "@pipewright/protocol";
import { valueStats } from "@pipewright/protocol";
import { receivedBytes, type ServiceImpl } from "@pipewright/protocol";
import { fieldBytes } from "@pipewright/protocol";
import { MAX_MESSAGE_BYTES, MAX_NAME_LENGTH, MAX_VALUE_BYTES, MAX_VALUE_DEPTH } from "@pipewright/protocol";
import { noneValue } from "../core/values.js";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import type { RunEngine } from "../engine/run-engine.js";
import { endSubmitSpan, startSubmitSpan, TRACER_NAME } from "../observe/tracing.js";
import { runFromRow } from "../engine/run-views.js";
import type { Sql } from "../store/database.js";
import { countRunsByState, countScheduledRuns, listRuns, loadRunByUid, type RunRow } from "../store/run-store.js";
import { callNamespace } from "./namespace.js";
import { prepareSubmits, type SubmitLimits } from "./prepare-submit.js";
import { optionalMs } from "@pipewright/protocol";

const MAX_BATCH = 1000;
/** CountRuns counts each state up to this: "10,000 or more" is all a summary needs, and it keeps the count cheap with millions of runs. */
const COUNT_LIMIT = 10_000;
const DEFAULT_WAIT_MS = 60_000;
const MAX_WAIT_MS = 3600_000;
const KNOWN_RUN_STATES = new Set(Object.values(RunState).filter((v): v is number => typeof v === "number" && v !== RunState.UNSPECIFIED));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `tracer`: records the server span of each submit, a child of the trace
 * context the client sent in the call's metadata (observe/tracing.ts).
 */
export function runService(engine: RunEngine, sql: Sql, limits: SubmitLimits, tracer: Tracer = trace.getTracer(TRACER_NAME)): ServiceImpl<typeof RunService> {
  return {
    async submitRun(request, call) {
      const { span, context } = startSubmitSpan(tracer, "SubmitRun", call?.metadata);
      try {
        const raw = receivedBytes(request);
        const [prepared] = await prepareSubmits([request], limits, () => "", raw ? [raw] : undefined, callNamespace(call?.metadata));
        prepared.traceParent = context;
        const [outcome] = await engine.submit([prepared]);
        endSubmitSpan(span, { runIds: [outcome.run.id] });
        return create(SubmitRunResponseSchema, outcome);
      } catch (error) {
        endSubmitSpan(span, { error });
        throw error;
      }
    },

    async batchSubmitRuns(request, call) {
      const { span, context } = startSubmitSpan(tracer, "BatchSubmitRuns", call?.metadata);
      try {
        if (request.requests.length > MAX_BATCH) {
          throw new PipewrightError("INVALID_ARGUMENT", `invalid request: requests: at most ${MAX_BATCH} per batch, got ${request.requests.length}`);
        }
        const raw = receivedBytes(request);
        const prepared = await prepareSubmits(
          request.requests,
          limits,
          (i) => `requests[${i}].`,
          raw ? fieldBytes(raw, BatchSubmitRunsRequestSchema.field.requests.number) : undefined,
          callNamespace(call?.metadata),
        );
        for (const p of prepared) p.traceParent = context;
        const outcomes = prepared.length ? await engine.submit(prepared) : [];
        endSubmitSpan(span, { runIds: outcomes.map((o) => o.run.id) });
        return create(BatchSubmitRunsResponseSchema, { responses: outcomes.map((o) => create(SubmitRunResponseSchema, o)) });
      } catch (error) {
        endSubmitSpan(span, { error });
        throw error;
      }
    },

    async getRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      return create(GetRunResponseSchema, { run: await engine.getRun(request.runId, request.view === RunView.FULL) });
    },

    async waitRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      const timeout = optionalMs(request.timeout) || DEFAULT_WAIT_MS;
      if (timeout > MAX_WAIT_MS) throw new PipewrightError("INVALID_ARGUMENT", `invalid request: timeout: must be at most 1 hour, got ${timeout} ms`);
      const run = await engine.waitRun(request.runId, timeout, cancelSignal(call));
      return create(WaitRunResponseSchema, { run, done: run.state >= RunState.SUCCEEDED });
    },

    async waitRuns(request, call) {
      if (request.runIds.length > MAX_BATCH)
        throw new PipewrightError("INVALID_ARGUMENT", `invalid request: run_ids: at most ${MAX_BATCH}, got ${request.runIds.length}`);
      await checkRunIds(engine, request.runIds, call);
      const timeout = optionalMs(request.timeout) || DEFAULT_WAIT_MS;
      if (timeout > MAX_WAIT_MS) throw new PipewrightError("INVALID_ARGUMENT", `invalid request: timeout: must be at most 1 hour, got ${timeout} ms`);
      const runs = await engine.waitRuns(request.runIds, timeout, cancelSignal(call));
      const done = runs.every((r) => r.state >= RunState.SUCCEEDED);
      return create(WaitRunsResponseSchema, { runs: withinResponseBudget(runs), done });
    },

    async watchRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      const signal = cancelSignal(call);
      for await (const event of engine.watch(request.runId, Number(request.afterSeq), signal)) {
        if (signal.aborted) return;
        call.write(create(WatchRunResponseSchema, { event }));
      }
    },

    async cancelRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      return create(CancelRunResponseSchema, { run: await engine.control(request.runId, "cancel", request.reason) });
    },

    async pauseRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      return create(PauseRunResponseSchema, { run: await engine.control(request.runId, "pause") });
    },

    async resumeRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      return create(ResumeRunResponseSchema, { run: await engine.control(request.runId, "resume") });
    },

    async signalRun(request, call) {
      const violations = signalViolations(request);
      if (violations.length) throw invalidRequest(violations);
      await checkRunIds(engine, [request.runId], call);
      const { run, outcome } = await engine.signal(request.runId, {
        name: request.name,
        payload: request.payload ?? noneValue(),
        id: request.signalId || undefined,
      });
      const delivery = outcome
        ? { delivered: SignalDelivery.DELIVERED, kept: SignalDelivery.KEPT, duplicate: SignalDelivery.DUPLICATE }[outcome]
        : SignalDelivery.UNSPECIFIED;
      return create(SignalRunResponseSchema, { run, delivery });
    },

    async deleteRun(request, call) {
      await checkRunIds(engine, [request.runId], call);
      await engine.deleteRun(request.runId);
      return create(DeleteRunResponseSchema, {});
    },

    async countRuns(_request, call) {
      const states = [...KNOWN_RUN_STATES].sort((a, b) => a - b);
      const namespace = callNamespace(call?.metadata);
      const [counts, scheduled] = await Promise.all([countRunsByState(sql, namespace, states, COUNT_LIMIT), countScheduledRuns(sql, namespace, COUNT_LIMIT)]);
      return create(CountRunsResponseSchema, {
        limit: BigInt(COUNT_LIMIT),
        scheduled: BigInt(scheduled),
        scheduledCapped: scheduled >= COUNT_LIMIT,
        counts: states.map((state) => {
          const count = counts.get(state) ?? 0;
          return create(RunStateCountSchema, { state, count: BigInt(count), capped: count >= COUNT_LIMIT });
        }),
      });
    },

    async resubmitRun(request, call) {
      const { span, context } = startSubmitSpan(tracer, "ResubmitRun", call?.metadata);
      try {
        await checkRunIds(engine, [request.runId], call);
        const row = await loadRunByUid(sql, request.runId);
        if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${request.runId}`);
        const again = create(SubmitRunRequestSchema, {
          requestId: request.requestId,
          pipeline: fromBinary(PipelineSchema, row.spec),
          name: row.name,
          runTimeout: row.deadline ? durationFromMs(row.deadline.getTime() - row.created_at.getTime()) : undefined,
        });
        const [prepared] = await prepareSubmits([again], limits, () => "", undefined, callNamespace(call?.metadata));
        prepared.traceParent = context;
        const [outcome] = await engine.submit([prepared]);
        endSubmitSpan(span, { runIds: [outcome.run.id] });
        return create(ResubmitRunResponseSchema, outcome);
      } catch (error) {
        endSubmitSpan(span, { error });
        throw error;
      }
    },

    async listRuns(request, call) {
      const size = request.pageSize || 100;
      if (size < 1 || size > 1000)
        throw new PipewrightError("INVALID_ARGUMENT", `invalid request: page_size: must be between 1 and 1000, got ${request.pageSize}`);
      const unknown = request.states.map((s, i) => ({ s, i })).filter(({ s }) => !KNOWN_RUN_STATES.has(s));
      if (unknown.length) {
        throw invalidRequest(
          unknown.map(({ s, i }) => ({ field: `states[${i}]`, description: `unknown run state ${s}, expected one of ${[...KNOWN_RUN_STATES].join(", ")}` })),
        );
      }
      if (request.name.length > MAX_NAME_LENGTH)
        throw invalidRequest([{ field: "name", description: `must be at most ${MAX_NAME_LENGTH} characters, got ${request.name.length}` }]);
      const before = request.pageToken ? decodePageToken(request.pageToken) : undefined;
      const rows = await listRuns(sql, {
        namespace: callNamespace(call?.metadata),
        scheduled: request.scheduled,
        states: request.states,
        name: request.name,
        before,
        limit: size + 1,
      });
      const page = firstRowsWithinBudget(rows.slice(0, size));
      const last = page.at(-1);
      const next = rows.length > page.length && last ? encodePageToken({ createdAt: last.created_at, id: last.id }) : "";
      return create(ListRunsResponseSchema, { runs: page.map((r) => runFromRow(r)), nextPageToken: next });
    },
  };
}

/**
 * Bytes of runs' outcomes and states one response carries, at most: half a
 * message (a run's result may be up to MAX_VALUE_BYTES; a thousand of them do
 * not fit in any message, and a response over the limit reaches nobody).
 */
const RESPONSE_BUDGET = MAX_MESSAGE_BYTES / 2;

/** ListRuns: the page ends early rather than pass the budget (the next token goes on from there). */
function firstRowsWithinBudget(rows: RunRow[]): RunRow[] {
  let used = 0;
  for (let i = 0; i < rows.length; i++) {
    used += 256 + (rows[i].outcome?.length ?? 0) + (rows[i].final_state?.length ?? 0) + rows[i].name.length;
    if (used > RESPONSE_BUDGET && i > 0) return rows.slice(0, i);
  }
  return rows;
}

/** WaitRuns: runs past the budget come without their outcome and state (Run.outcome_omitted). */
function withinResponseBudget(runs: Run[]): Run[] {
  let used = 0;
  return runs.map((r) => {
    const o = r.outcome?.kind;
    used += 256 + (o?.value ? valueStats(o.value).bytes : 0) + (r.finalState ? valueStats(r.finalState).bytes : 0);
    // A copy: the engine shares the run objects it answers with (recently finished runs).
    return used > RESPONSE_BUDGET ? create(RunSchema, { ...r, outcome: undefined, finalState: undefined, outcomeOmitted: true }) : r;
  });
}

/** Every problem of a SignalRunRequest, each with its field (the run id's too). */
function signalViolations(r: SignalRunRequest): Violation[] {
  const out: Violation[] = [];
  if (!UUID.test(r.runId)) out.push({ field: "run_id", description: `must be a run id (a UUID), got ${JSON.stringify(r.runId.slice(0, 60))}` });
  const name = waitNameProblem(r.name);
  if (name) out.push({ field: "name", description: name });
  if (r.signalId.length > MAX_NAME_LENGTH)
    out.push({ field: "signal_id", description: `must be at most ${MAX_NAME_LENGTH} characters, got ${r.signalId.length}` });
  if (r.payload) {
    const s = valueStats(r.payload);
    if (s.bytes > MAX_VALUE_BYTES) out.push({ field: "payload", description: `is about ${s.bytes} bytes, over the limit of ${MAX_VALUE_BYTES}` });
    else if (s.depth > MAX_VALUE_DEPTH)
      out.push({ field: "payload", description: `nests values ${s.depth} levels deep, over the limit of ${MAX_VALUE_DEPTH}` });
  }
  return out;
}

function checkRunId(id: string): void {
  if (!UUID.test(id))
    throw new PipewrightError("INVALID_ARGUMENT", `invalid request: run_id: must be a run id (a UUID), got ${JSON.stringify(id.slice(0, 60))}`);
}

/**
 * Every id is a run id, of a run in the call's namespace. A run of another
 * namespace is NOT_FOUND, word for word as a run that does not exist: a
 * caller learns nothing of other namespaces' runs, not even that they exist.
 */
async function checkRunIds(engine: RunEngine, ids: string[], call: { metadata?: grpc.Metadata } | undefined): Promise<void> {
  ids.forEach(checkRunId);
  const namespace = callNamespace(call?.metadata);
  const found = await engine.namespacesOf(ids.map((id) => id.toLowerCase()));
  const foreign = ids.find((id) => found.get(id.toLowerCase()) !== namespace && found.has(id.toLowerCase()));
  if (foreign) throw new PipewrightError("NOT_FOUND", `no run with id ${foreign}`);
}

/** Aborted when the client cancels the call or its deadline passes. */
function cancelSignal(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): AbortSignal {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort());
  return controller.signal;
}

// Page tokens are opaque to clients: a keyset cursor (created_at, id) in base64url.
function encodePageToken(c: { createdAt: Date; id: number }): string {
  return Buffer.from(JSON.stringify([c.createdAt.toISOString(), c.id])).toString("base64url");
}

function decodePageToken(token: string): { createdAt: Date; id: number } {
  try {
    const [at, id] = JSON.parse(Buffer.from(token, "base64url").toString());
    const createdAt = new Date(at);
    // Whatever reaches SQL must fit its column: a bigint id, a timestamp PostgreSQL can parse.
    const year = createdAt.getUTCFullYear();
    if (typeof at !== "string" || !Number.isSafeInteger(id) || id < 1 || !(year >= 1970 && year <= 9999)) throw new Error();
    return { createdAt, id };
  } catch {
    throw new PipewrightError("INVALID_ARGUMENT", "invalid request: page_token: not a token returned by ListRuns");
  }
}
