// How the `pipewright` command talks to people and scripts: exit codes,
// aligned tables, times, values, and gRPC errors as one clear line.

import * as grpc from "@grpc/grpc-js";
import { decodeValue, RunState, StepState, type Run, type TaskError, type Value } from "@pipewright/protocol";
import { optionalTimeMs } from "@pipewright/protocol";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Exit codes (README "Command line"): the outcome of a run, then what went wrong before one. */
export const EXIT = {
  ok: 0,
  /** The run failed. */
  runFailed: 1,
  /** The run was cancelled. */
  runCancelled: 2,
  /** The run had not finished when the command stopped waiting. */
  notFinished: 3,
  /** Bad arguments or input (sysexits EX_USAGE). */
  usage: 64,
  /** The server refused the request (not found, invalid, not allowed now). */
  refused: 65,
  /** The server could not be reached (sysexits EX_UNAVAILABLE). */
  unavailable: 69,
  /** Anything else (sysexits EX_SOFTWARE). */
  internal: 70,
} as const;

/** An error the command reports as one line, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** A failed call as one line: what failed and why, never a stack trace. */
export function callError(err: unknown, address: string): CliError {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e?.code !== "number") return new CliError(`error: ${(err as Error)?.message ?? String(err)}`, EXIT.internal);
  if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
    const why = e.details && !/No connection established/.test(e.details) ? `: ${e.details}` : " (is it running? set --address or PIPEWRIGHT_ADDRESS)";
    return new CliError(`cannot reach the Pipewright server at ${address}${why}`, EXIT.unavailable);
  }
  return new CliError(`error: ${grpc.status[e.code].toLowerCase().replace(/_/g, " ")}: ${e.details ?? ""}`, EXIT.refused);
}

/** The exit code a finished (or not) run's state stands for. */
export function exitCodeOf(state: RunState): number {
  switch (state) {
    case RunState.SUCCEEDED:
      return EXIT.ok;
    case RunState.FAILED:
      return EXIT.runFailed;
    case RunState.CANCELLED:
      return EXIT.runCancelled;
    default:
      return EXIT.notFinished;
  }
}

export const runStateName = (s: RunState): string => (RunState[s] ?? String(s)).toLowerCase();
export const stepStateName = (s: StepState): string => (StepState[s] ?? String(s)).toLowerCase();

/** Run states by the names people type (`--state running,failed`). */
export function parseRunStates(names: string[]): RunState[] {
  return names
    .flatMap((n) => n.split(","))
    .filter(Boolean)
    .map((n) => {
      const s = RunState[n.trim().toUpperCase() as keyof typeof RunState];
      if (typeof s !== "number" || s === RunState.UNSPECIFIED) {
        throw new CliError(`unknown run state ${JSON.stringify(n)}: expected one of running, paused, cancelling, succeeded, failed, cancelled`, EXIT.usage);
      }
      return s;
    });
}

/** Rows as columns aligned under their headers (the widest cell sets each column). */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => displayWidth(r[i] ?? ""))));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i] - displayWidth(c))))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Key/value lines, keys aligned. */
export function keyValues(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

function displayWidth(s: string): number {
  // Every code point one column: the symbols used here (✓ ✗ ▶ …) are single-width.
  return [...s.replace(/\x1b\[[0-9;]*m/g, "")].length;
}

export function formatTime(t: Timestamp | undefined): string {
  const at = optionalTimeMs(t);
  return at === undefined
    ? ""
    : new Date(at)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z");
}

/** 850ms, 12.3s, 4m05s, 2h03m. */
export function formatDuration(millis: number | undefined): string {
  if (millis === undefined || millis < 0) return "";
  if (millis < 1000) return `${Math.round(millis)}ms`;
  const s = millis / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** A run's (or a step's) duration: to its finish, or to now while it goes on. */
export function runDuration(start: Timestamp | undefined, finish: Timestamp | undefined, now = Date.now()): string {
  const a = optionalTimeMs(start);
  return a === undefined ? "" : formatDuration((optionalTimeMs(finish) ?? now) - a);
}

/** A value as text: its JSON when it is JSON (or text), else what it is. */
export function formatValue(v: Value | undefined): string {
  if (!v) return "null";
  try {
    const decoded = decodeValue(v);
    return decoded instanceof Uint8Array ? `<${decoded.length} bytes>` : JSON.stringify(decoded);
  } catch {
    const p = v.kind.case === "payload" ? v.kind.value : undefined;
    return p ? `<${p.data.length} bytes, encoding ${JSON.stringify(p.encoding)}>` : `<${v.kind.case}>`;
  }
}

export function formatError(e: TaskError | undefined): string {
  if (!e) return "";
  const message = e.message.length > 200 ? `${e.message.slice(0, 200)}…` : e.message;
  return `${e.type}: ${message}`;
}

/** What a finished run came to, as one line: its result or its error. */
export function outcomeLine(run: Run): string {
  const o = run.outcome?.kind;
  if (o?.case === "value") return formatValue(o.value);
  if (o?.case === "error") return formatError(o.value);
  return run.outcomeOmitted ? "(outcome left out: see pipewright get)" : "";
}
