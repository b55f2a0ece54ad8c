// pipewright.v1.ScheduleService: decode, validate, call the store or the
// scheduler, encode. Every schedule lives in the caller's namespace; one of
// another namespace is NOT_FOUND, word for word as one that does not exist.

import { create, fromBinary } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import {
  checkDuration,
  CreateScheduleResponseSchema,
  DeleteScheduleResponseSchema,
  GetScheduleResponseSchema,
  ListScheduleFiresResponseSchema,
  ListSchedulesResponseSchema,
  MAX_MESSAGE_BYTES,
  MAX_NAME_LENGTH,
  PauseScheduleResponseSchema,
  PipelineSchema,
  ResumeScheduleResponseSchema,
  ScheduleFireOutcome,
  ScheduleFireSchema,
  ScheduleOverlapPolicy,
  ScheduleSchema,
  ScheduleService,
  SubmitRunRequestSchema,
  TriggerScheduleResponseSchema,
  UpdateScheduleResponseSchema,
  type Schedule,
  type ScheduleFire,
  type ServiceImpl,
  type Violation,
} from "@pipewright/protocol";
import { parseCron, type CronSchedule } from "../core/cron.js";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import type { Scheduler } from "../schedule/scheduler.js";
import type { Sql } from "../store/database.js";
import { listFires, type FireRow } from "../store/schedule-fires.js";
import {
  deleteSchedule,
  getSchedule,
  insertSchedule,
  listSchedules,
  setPaused,
  updateSchedule,
  type ScheduleRow,
  type ScheduleSettings,
} from "../store/schedules.js";
import { callNamespace } from "./namespace.js";
import { prepareSubmits, type SubmitLimits } from "./prepare-submit.js";

/** Schedules one namespace may hold (CreateSchedule past it: RESOURCE_EXHAUSTED). */
export const MAX_SCHEDULES_PER_NAMESPACE = 10_000;
/** A schedule id: letters, digits, '.', '_', '-', starting with a letter or digit; 128 at most keeps its fires' request ids under 200. */
const SCHEDULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** TriggerSchedule's request id: the same characters, 64 at most. */
const TRIGGER_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Catch-up window: unset means 1 minute; at most 366 days. */
const DEFAULT_CATCHUP_MS = 60_000;
const MAX_CATCHUP_MS = 366 * 24 * 3600_000;
const KNOWN_OVERLAPS = new Set([
  ScheduleOverlapPolicy.UNSPECIFIED,
  ScheduleOverlapPolicy.SKIP,
  ScheduleOverlapPolicy.ALLOW,
  ScheduleOverlapPolicy.CANCEL_PREVIOUS,
]);
/** A fire time in a page token, as toISOString writes it. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Bytes of pipelines one list response carries, at most (a page ends early past it; the next token goes on). */
const RESPONSE_BUDGET = MAX_MESSAGE_BYTES / 2;

export function scheduleService(sql: Sql, scheduler: Scheduler, limits: SubmitLimits): ServiceImpl<typeof ScheduleService> {
  return {
    async createSchedule(request, call) {
      const namespace = callNamespace(call?.metadata);
      const { id, settings, cron } = await checkSchedule(request.schedule, limits);
      const row = await insertSchedule(sql, namespace, id, settings, nextFrom(cron, Date.now()), MAX_SCHEDULES_PER_NAMESPACE);
      if (row === "exists") throw new PipewrightError("ALREADY_EXISTS", `a schedule with id ${id} already exists`);
      if (row === "full")
        throw new PipewrightError(
          "RESOURCE_EXHAUSTED",
          `this namespace holds ${MAX_SCHEDULES_PER_NAMESPACE} schedules, the limit (max schedules per namespace)`,
        );
      return create(CreateScheduleResponseSchema, { schedule: scheduleOf(row) });
    },

    async getSchedule(request, call) {
      return create(GetScheduleResponseSchema, { schedule: scheduleOf(await found(sql, call, request.scheduleId)) });
    },

    async listSchedules(request, call) {
      const size = pageSize(request.pageSize);
      const after = request.pageToken ? decodeToken(request.pageToken, "ListSchedules") : "";
      if (after && !SCHEDULE_ID.test(after)) throw badToken("ListSchedules");
      const rows = await listSchedules(sql, callNamespace(call?.metadata), after, size + 1);
      const page = withinBudget(rows.slice(0, size));
      const next = rows.length > page.length ? encodeToken(page.at(-1)!.schedule_id) : "";
      return create(ListSchedulesResponseSchema, { schedules: page.map(scheduleOf), nextPageToken: next });
    },

    async updateSchedule(request, call) {
      const { id, settings, cron } = await checkSchedule(request.schedule, limits);
      const namespace = callNamespace(call?.metadata);
      const current = await getSchedule(sql, namespace, id);
      if (!current) throw notFound(id);
      // The same cron in the same zone keeps its next fire; a new one counts from now.
      const same = current.cron === settings.cron && current.time_zone === settings.timeZone;
      const row = await updateSchedule(sql, namespace, id, settings, same ? undefined : nextFrom(cron, Date.now()));
      if (!row) throw notFound(id);
      return create(UpdateScheduleResponseSchema, { schedule: scheduleOf(row) });
    },

    async deleteSchedule(request, call) {
      checkId(request.scheduleId);
      if (!(await deleteSchedule(sql, callNamespace(call?.metadata), request.scheduleId))) throw notFound(request.scheduleId);
      return create(DeleteScheduleResponseSchema, {});
    },

    async pauseSchedule(request, call) {
      checkId(request.scheduleId);
      const row = await setPaused(sql, callNamespace(call?.metadata), request.scheduleId, true, null);
      if (!row) throw notFound(request.scheduleId);
      return create(PauseScheduleResponseSchema, { schedule: scheduleOf(row) });
    },

    async resumeSchedule(request, call) {
      const current = await found(sql, call, request.scheduleId);
      // No backlog: the fires missed while paused are not caught up.
      const next = nextFrom(parseCron(current.cron, current.time_zone).schedule!, Date.now());
      const row = await setPaused(sql, current.namespace, current.schedule_id, false, next);
      if (!row) throw notFound(request.scheduleId);
      return create(ResumeScheduleResponseSchema, { schedule: scheduleOf(row) });
    },

    async triggerSchedule(request, call) {
      const violations: Violation[] = [];
      if (!SCHEDULE_ID.test(request.scheduleId)) violations.push(idViolation(request.scheduleId));
      if (request.requestId && !TRIGGER_REQUEST_ID.test(request.requestId))
        violations.push({
          field: "request_id",
          description: `must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(request.requestId.slice(0, 80))}`,
        });
      if (violations.length) throw invalidRequest(violations);
      const fire = await scheduler.trigger(callNamespace(call?.metadata), request.scheduleId, request.requestId);
      return create(TriggerScheduleResponseSchema, { fire: fireOf(fire) });
    },

    async listScheduleFires(request, call) {
      const size = pageSize(request.pageSize);
      const schedule = await found(sql, call, request.scheduleId);
      const token = request.pageToken ? decodeToken(request.pageToken, "ListScheduleFires") : undefined;
      const before = token !== undefined ? new Date(ISO_TIME.test(token) ? token : NaN) : undefined;
      // Whatever reaches SQL must be a timestamp PostgreSQL can read.
      if (before && !(before.getUTCFullYear() >= 1970 && before.getUTCFullYear() <= 9999)) throw badToken("ListScheduleFires");
      const rows = await listFires(sql, schedule.id, before, size + 1);
      const page = rows.slice(0, size);
      const next = rows.length > size ? encodeToken(page.at(-1)!.fire_at.toISOString()) : "";
      return create(ListScheduleFiresResponseSchema, { fires: page.map(fireOf), nextPageToken: next });
    },
  };
}

/**
 * Checks a Create/Update request's schedule, every violation at once; the
 * pipeline, run name and timeout exactly as SubmitRun checks them.
 */
async function checkSchedule(s: Schedule | undefined, limits: SubmitLimits): Promise<{ id: string; settings: ScheduleSettings; cron: CronSchedule }> {
  if (!s) throw invalidRequest([{ field: "schedule", description: "must be set: the schedule" }]);
  const out: Violation[] = [];
  if (!SCHEDULE_ID.test(s.scheduleId)) out.push(idViolation(s.scheduleId, "schedule.schedule_id"));
  const { schedule: cron, violations } = parseCron(s.cron, s.timeZone, "schedule.cron", "schedule.time_zone");
  out.push(...violations);
  if (!KNOWN_OVERLAPS.has(s.overlap))
    out.push({ field: "schedule.overlap", description: `unknown overlap policy ${s.overlap}, expected 1 (SKIP), 2 (ALLOW) or 3 (CANCEL_PREVIOUS)` });
  const before = out.length;
  checkDuration(s.catchupWindow, "schedule.catchup_window", out);
  if (out.length === before && s.catchupWindow && durationMs(s.catchupWindow) > MAX_CATCHUP_MS)
    out.push({ field: "schedule.catchup_window", description: `must be at most 366 days, got ${s.catchupWindow.seconds}s` });
  if (s.runName.length > MAX_NAME_LENGTH)
    out.push({ field: "schedule.run_name", description: `must be at most ${MAX_NAME_LENGTH} characters, got ${s.runName.length}` });
  // The run template as the SubmitRun each fire makes (its name checked above, under its own field name).
  const template = create(SubmitRunRequestSchema, { pipeline: s.pipeline, runTimeout: s.runTimeout });
  let spec: Uint8Array | undefined;
  try {
    [{ spec }] = await prepareSubmits([template], limits, () => "schedule.");
  } catch (err) {
    if (!(err instanceof PipewrightError && err.code === "INVALID_ARGUMENT" && err.violations)) throw err;
    out.push(...err.violations);
  }
  if (out.length || !cron || !spec) throw invalidRequest(out);
  const settings: ScheduleSettings = {
    cron: s.cron,
    timeZone: cron.timeZone,
    overlap: s.overlap || ScheduleOverlapPolicy.SKIP,
    catchupWindowMs: s.catchupWindow ? durationMs(s.catchupWindow) : DEFAULT_CATCHUP_MS,
    pipeline: spec,
    runName: s.runName,
    runTimeoutMs: s.runTimeout ? durationMs(s.runTimeout) : 0,
  };
  return { id: s.scheduleId, settings, cron };
}

function nextFrom(cron: CronSchedule, now: number): Date | null {
  const next = cron.nextAfter(now);
  return next === undefined ? null : new Date(next);
}

function idViolation(id: string, field = "schedule_id"): Violation {
  return {
    field,
    description: `must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit, got ${JSON.stringify(id.slice(0, 140))}`,
  };
}

function checkId(id: string): void {
  if (!SCHEDULE_ID.test(id)) throw invalidRequest([idViolation(id)]);
}

function notFound(id: string): PipewrightError {
  return new PipewrightError("NOT_FOUND", `no schedule with id ${id}`);
}

/** The caller's namespace's schedule with this id, or NOT_FOUND. */
async function found(sql: Sql, call: { metadata?: grpc.Metadata } | undefined, id: string): Promise<ScheduleRow> {
  checkId(id);
  const row = await getSchedule(sql, callNamespace(call?.metadata), id);
  if (!row) throw notFound(id);
  return row;
}

function pageSize(requested: number): number {
  const size = requested || 100;
  if (size < 1 || size > 1000) throw invalidRequest([{ field: "page_size", description: `must be between 1 and 1000, got ${requested}` }]);
  return size;
}

function withinBudget(rows: ScheduleRow[]): ScheduleRow[] {
  let used = 0;
  for (let i = 0; i < rows.length; i++) {
    used += 512 + rows[i].pipeline.length;
    if (used > RESPONSE_BUDGET && i > 0) return rows.slice(0, i);
  }
  return rows;
}

const OVERLAP_OF: Record<number, ScheduleOverlapPolicy> = {
  1: ScheduleOverlapPolicy.SKIP,
  2: ScheduleOverlapPolicy.ALLOW,
  3: ScheduleOverlapPolicy.CANCEL_PREVIOUS,
};

function scheduleOf(r: ScheduleRow): Schedule {
  return create(ScheduleSchema, {
    scheduleId: r.schedule_id,
    cron: r.cron,
    timeZone: r.time_zone,
    pipeline: fromBinary(PipelineSchema, r.pipeline),
    runName: r.run_name,
    runTimeout: r.run_timeout_ms ? durationFromMs(r.run_timeout_ms) : undefined,
    overlap: OVERLAP_OF[r.overlap],
    catchupWindow: durationFromMs(r.catchup_window_ms),
    paused: r.paused,
    nextFireTime: r.next_fire_at ? timestampFromDate(r.next_fire_at) : undefined,
    lastFireTime: r.last_fire_at ? timestampFromDate(r.last_fire_at) : undefined,
    createTime: timestampFromDate(r.created_at),
    updateTime: timestampFromDate(r.updated_at),
  });
}

function fireOf(f: FireRow): ScheduleFire {
  return create(ScheduleFireSchema, {
    fireTime: timestampFromDate(f.fire_at),
    outcome: f.outcome as ScheduleFireOutcome,
    runId: f.run_uid ?? "",
    reason: f.reason,
    triggered: f.triggered,
    requestId: f.request_id,
  });
}

// Page tokens are opaque to clients: the last schedule id, or the last fire time, in base64url.
function encodeToken(s: string): string {
  return Buffer.from(s).toString("base64url");
}

function decodeToken(token: string, method: string): string {
  const s = token.length <= 400 ? Buffer.from(token, "base64url").toString() : "";
  if (!s || s.length > 200) throw badToken(method);
  return s;
}

function badToken(method: string): PipewrightError {
  return invalidRequest([{ field: "page_token", description: `not a token returned by ${method}` }]);
}
