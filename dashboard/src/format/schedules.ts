// Schedule settings and fire outcomes as the schedule views show them.

import { durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import { ScheduleFireOutcome, ScheduleOverlapPolicy, type Schedule } from "../../../proto/gen/pipewright/v1/schedule_service_pb.js";
import { formatDuration } from "./durations.js";

/** "skip", "allow", "cancel previous"; unset is the server's default, skip. */
export function overlapName(p: ScheduleOverlapPolicy): string {
  switch (p) {
    case ScheduleOverlapPolicy.ALLOW:
      return "allow";
    case ScheduleOverlapPolicy.CANCEL_PREVIOUS:
      return "cancel previous";
    default:
      return "skip";
  }
}

/** "0 * * * * * (Europe/Berlin)"; no zone is UTC. */
export function cronText(s: Pick<Schedule, "cron" | "timeZone">): string {
  return `${s.cron} (${s.timeZone || "UTC"})`;
}

/** The schedule's badge: PAUSED or ACTIVE (`data-state` is what the browser test reads). */
export function scheduleBadge(s: Pick<Schedule, "paused">): { name: string; tone: string } {
  return s.paused ? { name: "PAUSED", tone: "warn" } : { name: "ACTIVE", tone: "ok" };
}

export function fireOutcomeBadge(o: ScheduleFireOutcome): { name: string; tone: string } {
  switch (o) {
    case ScheduleFireOutcome.STARTED:
      return { name: "STARTED", tone: "ok" };
    case ScheduleFireOutcome.SKIPPED:
      return { name: "SKIPPED", tone: "muted" };
    case ScheduleFireOutcome.PENDING:
      return { name: "PENDING", tone: "active" };
    default:
      return { name: "UNKNOWN", tone: "idle" };
  }
}

/** A duration setting, or `unset` when the field is absent. */
export function durationSetting(d: Duration | undefined, unset: string): string {
  return d ? formatDuration(durationMs(d)) : unset;
}
