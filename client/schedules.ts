// Schedules: a pipeline started on a cron schedule (with seconds, in a time
// zone), by the server, exactly once per fire across all its processes.
// Reached as `client.schedules`.

import { durationFromMs, durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  createClient,
  ScheduleFireOutcome,
  ScheduleOverlapPolicy,
  ScheduleService,
  type Client,
  type Pipeline as PipelineMessage,
  type Schedule as ScheduleMessage,
  type ScheduleFire,
  type TlsOptions,
} from "@pipewright/protocol";
import { withCallErrors } from "./call-errors.js";
import type { Pipeline } from "./pipeline-builder.js";

/** What a fire does while an earlier run of the schedule is still active: skip it, start anyway, or cancel the earlier run first. */
export type OverlapPolicy = "skip" | "allow" | "cancel_previous";

export interface ScheduleOptions {
  /** The schedule's id, unique in the namespace: 1 to 128 letters, digits, '.', '_', '-'. */
  id: string;
  /** 6 fields with seconds ("*\/10 * * * * *") or 5 without ("0 9 * * MON-FRI"). */
  cron: string;
  /** The pipeline each fire runs: a builder's pipeline or a pipewright.v1.Pipeline message. */
  pipeline: Pipeline<unknown> | PipelineMessage;
  /** IANA time zone the cron is read in. Default UTC. */
  timeZone?: string;
  /** Default "skip". */
  overlap?: OverlapPolicy;
  /** After downtime, fires missed within this long before now are started (the latest missed one always). Default 60,000. */
  catchupWindowMs?: number;
  /** Each run's name. Default: the schedule id. */
  runName?: string;
  /** Each run's run timeout. Default: none. */
  runTimeoutMs?: number;
}

export interface ScheduleInfo {
  id: string;
  cron: string;
  timeZone: string;
  overlap: OverlapPolicy;
  catchupWindowMs: number;
  runName: string;
  runTimeoutMs?: number;
  paused: boolean;
  /** Unset while paused. */
  nextFireAt?: Date;
  lastFireAt?: Date;
  createdAt: Date;
  updatedAt: Date;
  pipeline?: PipelineMessage;
}

export interface FireInfo {
  fireAt: Date;
  outcome: "pending" | "started" | "skipped";
  /** The run it started. */
  runId?: string;
  /** Why it started none. */
  reason: string;
  /** A fire of trigger(), not of the cron. */
  triggered: boolean;
  requestId: string;
}

export interface Page {
  pageSize?: number;
  pageToken?: string;
}

const OVERLAP_TO_PROTO: Record<OverlapPolicy, ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  allow: ScheduleOverlapPolicy.ALLOW,
  cancel_previous: ScheduleOverlapPolicy.CANCEL_PREVIOUS,
};
const OUTCOMES: Record<number, FireInfo["outcome"]> = {
  [ScheduleFireOutcome.PENDING]: "pending",
  [ScheduleFireOutcome.STARTED]: "started",
  [ScheduleFireOutcome.SKIPPED]: "skipped",
};

/**
 * @example
 *   await client.schedules.create({ id: "nightly-report", cron: "0 0 2 * * *", timeZone: "Europe/Berlin", pipeline: report.send() });
 *   const { fire } = await client.schedules.trigger("nightly-report");
 */
export class Schedules {
  /** The raw typed gRPC client of ScheduleService (failing with CallError). */
  readonly rpc: Client<typeof ScheduleService>;

  constructor(address: string, options: { token?: string; namespace?: string; tls?: TlsOptions }) {
    this.rpc = withCallErrors(createClient(ScheduleService, address, options), address);
  }

  async create(o: ScheduleOptions): Promise<ScheduleInfo> {
    return infoOf((await this.rpc.createSchedule({ schedule: messageOf(o) })).schedule!);
  }

  async get(id: string): Promise<ScheduleInfo> {
    return infoOf((await this.rpc.getSchedule({ scheduleId: id })).schedule!);
  }

  async list(page: Page = {}): Promise<{ schedules: ScheduleInfo[]; nextPageToken: string }> {
    const r = await this.rpc.listSchedules({ pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" });
    return { schedules: r.schedules.map(infoOf), nextPageToken: r.nextPageToken };
  }

  /** Replaces every setting (a changed cron or zone counts the next fire from now). */
  async update(o: ScheduleOptions): Promise<ScheduleInfo> {
    return infoOf((await this.rpc.updateSchedule({ schedule: messageOf(o) })).schedule!);
  }

  async delete(id: string): Promise<void> {
    await this.rpc.deleteSchedule({ scheduleId: id });
  }

  async pause(id: string): Promise<ScheduleInfo> {
    return infoOf((await this.rpc.pauseSchedule({ scheduleId: id })).schedule!);
  }

  /** Resumes; the next fire is the cron's first time after now (no backlog). */
  async resume(id: string): Promise<ScheduleInfo> {
    return infoOf((await this.rpc.resumeSchedule({ scheduleId: id })).schedule!);
  }

  /** Fires now under the overlap policy. `requestId`: repeating it returns the first fire, starting no second run. */
  async trigger(id: string, options: { requestId?: string } = {}): Promise<FireInfo> {
    return fireOf((await this.rpc.triggerSchedule({ scheduleId: id, requestId: options.requestId ?? "" })).fire!);
  }

  /** The schedule's fires, newest first. */
  async fires(id: string, page: Page = {}): Promise<{ fires: FireInfo[]; nextPageToken: string }> {
    const r = await this.rpc.listScheduleFires({ scheduleId: id, pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? "" });
    return { fires: r.fires.map(fireOf), nextPageToken: r.nextPageToken };
  }

  close(): void {
    this.rpc.close();
  }
}

function messageOf(o: ScheduleOptions) {
  return {
    scheduleId: o.id,
    cron: o.cron,
    timeZone: o.timeZone ?? "",
    pipeline: "toProto" in o.pipeline ? o.pipeline.toProto() : o.pipeline,
    overlap: o.overlap ? OVERLAP_TO_PROTO[o.overlap] : ScheduleOverlapPolicy.UNSPECIFIED,
    catchupWindow: o.catchupWindowMs !== undefined ? durationFromMs(o.catchupWindowMs) : undefined,
    runName: o.runName ?? "",
    runTimeout: o.runTimeoutMs ? durationFromMs(o.runTimeoutMs) : undefined,
  };
}

function infoOf(s: ScheduleMessage): ScheduleInfo {
  const overlap = (Object.keys(OVERLAP_TO_PROTO) as OverlapPolicy[]).find((k) => OVERLAP_TO_PROTO[k] === s.overlap) ?? "skip";
  return {
    id: s.scheduleId,
    cron: s.cron,
    timeZone: s.timeZone,
    overlap,
    catchupWindowMs: s.catchupWindow ? durationMs(s.catchupWindow) : 0,
    runName: s.runName,
    runTimeoutMs: s.runTimeout ? durationMs(s.runTimeout) : undefined,
    paused: s.paused,
    nextFireAt: s.nextFireTime ? timestampDate(s.nextFireTime) : undefined,
    lastFireAt: s.lastFireTime ? timestampDate(s.lastFireTime) : undefined,
    createdAt: timestampDate(s.createTime!),
    updatedAt: timestampDate(s.updateTime!),
    pipeline: s.pipeline,
  };
}

function fireOf(f: ScheduleFire): FireInfo {
  return {
    fireAt: timestampDate(f.fireTime!),
    outcome: OUTCOMES[f.outcome] ?? "pending",
    runId: f.runId || undefined,
    reason: f.reason,
    triggered: f.triggered,
    requestId: f.requestId,
  };
}
