// pipewright.v1.EventService: decode, validate, call the publisher or the
// triggers store, encode. Everything in the caller's namespace: another
// namespace's trigger is NOT_FOUND, its events unseen.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CreateTriggerResponseSchema,
  DeleteTriggerResponseSchema,
  EventSchema,
  EventService,
  GetTriggerResponseSchema,
  ListEventsResponseSchema,
  ListTriggersResponseSchema,
  PauseTriggerResponseSchema,
  PublishEventResponseSchema,
  ResumeTriggerResponseSchema,
  SubmitRunRequestSchema,
  TriggerSchema,
  TriggeredRunSchema,
  ValueSchema,
  checkDuration,
  valueStats,
  MAX_MESSAGE_BYTES,
  MAX_NAME_LENGTH,
  MAX_VALUE_BYTES,
  MAX_VALUE_DEPTH,
  type ServiceImpl,
  type Trigger,
  type Violation,
} from "@pipewright/protocol";
import { filterViolations } from "../core/event-filter.js";
import { eventIdProblem, eventNameProblem, triggerIdProblem } from "../core/event-names.js";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import type { EventPublisher } from "../events/event-publisher.js";
import type { Sql } from "../store/database.js";
import { listEvents, type StoredTriggeredRun } from "../store/events.js";
import { deleteTrigger, insertTrigger, listTriggers, loadTrigger, setTriggerPaused, type TriggerRow } from "../store/triggers.js";
import { callNamespace } from "./namespace.js";
import { prepareSubmits, type SubmitLimits } from "./prepare-submit.js";

/** Triggers one namespace may hold: each event of a name reads all of its name's, so the count is bounded. */
export const MAX_TRIGGERS_PER_NAMESPACE = 10_000;
/** A trigger's encoded size (its pipeline, mostly): every event of its name reads it. A pipeline that big belongs in a task that returns it. */
export const MAX_TRIGGER_BYTES = 1024 * 1024;
/** Payload or trigger bytes in one list response: half a message. */
const RESPONSE_BUDGET = MAX_MESSAGE_BYTES / 2;
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

export function eventService(publisher: EventPublisher, sql: Sql, limits: SubmitLimits): ServiceImpl<typeof EventService> {
  /** A trigger of the caller's namespace, or NOT_FOUND. */
  const findTrigger = async (namespace: string, triggerId: string): Promise<TriggerRow> => {
    checkTriggerId(triggerId);
    const row = await loadTrigger(sql, namespace, triggerId);
    if (!row) throw new PipewrightError("NOT_FOUND", `no trigger ${JSON.stringify(triggerId)}`);
    return row;
  };
  const pausedOrNotFound = async (namespace: string, triggerId: string, paused: boolean): Promise<Trigger> => {
    checkTriggerId(triggerId);
    const row = await setTriggerPaused(sql, namespace, triggerId, paused);
    if (!row) throw new PipewrightError("NOT_FOUND", `no trigger ${JSON.stringify(triggerId)}`);
    return triggerOf(row);
  };

  return {
    async publishEvent(request, call) {
      const violations: Violation[] = [];
      const nameProblem = eventNameProblem(request.name);
      if (nameProblem) violations.push({ field: "name", description: nameProblem });
      const idProblem = request.eventId ? eventIdProblem(request.eventId) : undefined;
      if (idProblem) violations.push({ field: "event_id", description: idProblem });
      if (request.payload) {
        const { bytes, depth } = valueStats(request.payload);
        if (bytes > MAX_VALUE_BYTES) violations.push({ field: "payload", description: `must be at most ${MAX_VALUE_BYTES} bytes, got about ${bytes}` });
        if (depth > MAX_VALUE_DEPTH) violations.push({ field: "payload", description: `must nest at most ${MAX_VALUE_DEPTH} values deep, got ${depth}` });
      }
      if (violations.length) throw invalidRequest(violations);
      const outcome = await publisher.publish(callNamespace(call?.metadata), { name: request.name, payload: request.payload, eventId: request.eventId });
      return create(PublishEventResponseSchema, { eventId: outcome.eventId, runs: outcome.runs.map(triggeredRun), duplicate: outcome.duplicate });
    },

    async listEvents(request, call) {
      const size = pageSize(request.pageSize);
      if (request.name) {
        const problem = eventNameProblem(request.name);
        if (problem) throw invalidRequest([{ field: "name", description: problem }]);
      }
      const before = request.pageToken ? eventCursor(request.pageToken) : 0;
      const rows = await listEvents(sql, {
        namespace: callNamespace(call?.metadata),
        name: request.name,
        beforeId: before,
        limit: size + 1,
        budgetBytes: RESPONSE_BUDGET,
      });
      const page = withinBudget(rows, size, (r) => r.payload);
      const events = page.map((r) =>
        create(EventSchema, {
          eventId: r.eventId,
          name: r.name,
          payload: fromBinary(ValueSchema, r.payload!),
          publishTime: timestampFromDate(r.publishedAt),
          triggerTime: r.triggeredAt ? timestampFromDate(r.triggeredAt) : undefined,
          runs: r.runs.map(triggeredRun),
        }),
      );
      const next = rows.length > page.length ? Buffer.from(String(page.at(-1)!.id)).toString("base64url") : "";
      return create(ListEventsResponseSchema, { events, nextPageToken: next });
    },

    async createTrigger(request, call) {
      const namespace = callNamespace(call?.metadata);
      const t = request.trigger;
      if (!t) throw invalidRequest([{ field: "trigger", description: "must be set: the trigger to create" }]);
      const violations: Violation[] = [];
      const idProblem = triggerIdProblem(t.triggerId);
      if (idProblem) violations.push({ field: "trigger.trigger_id", description: idProblem });
      const nameProblem = eventNameProblem(t.eventName);
      if (nameProblem) violations.push({ field: "trigger.event_name", description: nameProblem });
      violations.push(...filterViolations(t.filter, "trigger.filter"));
      if (t.runName.length > MAX_NAME_LENGTH)
        violations.push({ field: "trigger.run_name", description: `must be at most ${MAX_NAME_LENGTH} characters, got ${t.runName.length}` });
      checkDuration(t.runTimeout, "trigger.run_timeout", violations);
      // The pipeline is checked as SubmitRun checks it (the same code), with its field paths under trigger.
      const template = create(SubmitRunRequestSchema, { pipeline: t.pipeline });
      await prepareSubmits([template], limits, () => "trigger.", undefined, namespace).catch((err: unknown) => {
        if (err instanceof PipewrightError && err.violations) violations.push(...err.violations);
        else throw err;
      });
      if (violations.length) throw invalidRequest(violations);
      const spec = toBinary(TriggerSchema, create(TriggerSchema, { ...t, paused: false, createTime: undefined }));
      if (spec.length > MAX_TRIGGER_BYTES)
        throw new PipewrightError(
          "RESOURCE_EXHAUSTED",
          `the trigger is ${spec.length} bytes encoded, over the limit of ${MAX_TRIGGER_BYTES} bytes per trigger`,
        );
      const row = await insertTrigger(sql, namespace, { triggerId: t.triggerId, eventName: t.eventName, spec }, MAX_TRIGGERS_PER_NAMESPACE);
      if (row === "exists") throw new PipewrightError("ALREADY_EXISTS", `trigger ${JSON.stringify(t.triggerId)} already exists in this namespace`);
      if (row === "full")
        throw new PipewrightError(
          "RESOURCE_EXHAUSTED",
          `this namespace holds ${MAX_TRIGGERS_PER_NAMESPACE} triggers, the limit of triggers per namespace: delete some first`,
        );
      return create(CreateTriggerResponseSchema, { trigger: triggerOf(row) });
    },

    async getTrigger(request, call) {
      return create(GetTriggerResponseSchema, { trigger: triggerOf(await findTrigger(callNamespace(call?.metadata), request.triggerId)) });
    },

    async listTriggers(request, call) {
      const size = pageSize(request.pageSize);
      const after = request.pageToken ? triggerCursor(request.pageToken) : "";
      const rows = await listTriggers(sql, { namespace: callNamespace(call?.metadata), after, limit: size + 1, budgetBytes: RESPONSE_BUDGET });
      const page = withinBudget(rows, size, (r) => r.spec);
      const next = rows.length > page.length ? Buffer.from(page.at(-1)!.triggerId).toString("base64url") : "";
      return create(ListTriggersResponseSchema, { triggers: page.map((r) => triggerOf({ ...r, spec: r.spec! })), nextPageToken: next });
    },

    async deleteTrigger(request, call) {
      checkTriggerId(request.triggerId);
      if (!(await deleteTrigger(sql, callNamespace(call?.metadata), request.triggerId)))
        throw new PipewrightError("NOT_FOUND", `no trigger ${JSON.stringify(request.triggerId)}`);
      return create(DeleteTriggerResponseSchema);
    },

    async pauseTrigger(request, call) {
      return create(PauseTriggerResponseSchema, { trigger: await pausedOrNotFound(callNamespace(call?.metadata), request.triggerId, true) });
    },

    async resumeTrigger(request, call) {
      return create(ResumeTriggerResponseSchema, { trigger: await pausedOrNotFound(callNamespace(call?.metadata), request.triggerId, false) });
    },
  };
}

/** The page: at most `size` rows, ending before the first whose big column the store left out (past the bytes budget). */
function withinBudget<T>(rows: T[], size: number, big: (row: T) => Uint8Array | null): T[] {
  const page = rows.slice(0, size);
  const cut = page.findIndex((r) => big(r) === null);
  return cut < 0 ? page : page.slice(0, Math.max(1, cut));
}

function checkTriggerId(id: string): void {
  const problem = triggerIdProblem(id);
  if (problem) throw invalidRequest([{ field: "trigger_id", description: problem }]);
}

function pageSize(requested: number): number {
  if (requested < 0 || requested > MAX_PAGE)
    throw invalidRequest([{ field: "page_size", description: `must be between 1 and ${MAX_PAGE} (0: ${DEFAULT_PAGE}), got ${requested}` }]);
  return requested || DEFAULT_PAGE;
}

/** ListEvents' page token: the last event's internal id, base64url (opaque to clients). */
function eventCursor(token: string): number {
  const id = Number(Buffer.from(token, "base64url").toString());
  if (!Number.isSafeInteger(id) || id <= 0) throw invalidRequest([{ field: "page_token", description: "not a token returned by ListEvents" }]);
  return id;
}

/** ListTriggers' page token: the last trigger id, base64url. */
function triggerCursor(token: string): string {
  const id = Buffer.from(token, "base64url").toString();
  if (triggerIdProblem(id)) throw invalidRequest([{ field: "page_token", description: "not a token returned by ListTriggers" }]);
  return id;
}

function triggerOf(row: TriggerRow): Trigger {
  const t = fromBinary(TriggerSchema, row.spec);
  t.paused = row.paused;
  t.createTime = timestampFromDate(row.createdAt);
  return t;
}

function triggeredRun(r: StoredTriggeredRun) {
  return create(TriggeredRunSchema, { triggerId: r.trigger_id, runId: r.run_id, error: r.error });
}
