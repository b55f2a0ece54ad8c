// Times and durations as the tables show them.

import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

/** "1.2 s", "3 min 4 s", "2 h 5 min". */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** From start to finish, or to now while it goes on; "" when it has not started. */
export function durationOf(start: Timestamp | undefined, finish: Timestamp | undefined, now = Date.now()): string {
  if (!start) return "";
  return formatDuration((finish ? timestampMs(finish) : now) - timestampMs(start));
}

/** Local date and time, to the second. */
export function formatTime(t: Timestamp | undefined): string {
  if (!t) return "";
  const d = new Date(timestampMs(t));
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
