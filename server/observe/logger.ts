// The server's log: pino, one JSON object per line (or, on a terminal, pino-pretty's
// human form of the same objects). Every part of the server gets a child logger
// naming its component; what it logs about one run, step, attempt or worker
// carries that as fields (snake_case: run_id, step, attempt, worker_id, task,
// queue, process_id, ref, err), so a log store can filter on them instead of
// parsing sentences. README "Operating" lists the events and their levels.
//
// Why pino: JSON lines, levels, child loggers with bound fields, and the `err`
// serializer (type, message, stack, causes) out of the box; a call below the
// level costs a no-op function call (what a debug line per attempt costs at
// 7,000 tasks/s when debug is off: nothing measurable).
//
// Writes are synchronous (pino.destination's default, and a plain write()
// for the CLI's and the tests' sinks): a line logged just before the process
// exits is never lost, and at the default level the server writes a few
// lines per worker or incident, not per task.

import { createRequire } from "node:module";
import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";
import type { PrettyOptions } from "pino-pretty";

// pino-pretty is loaded only when pretty output is asked for: it and its dependencies take
// ~0.15 s to load, which every `pipewright` verb paid (a `pipewright watch` started after a
// submit came too late to see a 0.6 s task run) for output only a terminal gets.
const require = createRequire(import.meta.url);
const loadPretty = () => (require("pino-pretty") as typeof import("pino-pretty")).prettyFactory;

/** The server's logger: pino's. Components take one and make children (`log.child({ component })`). */
export type Logger = PinoLogger;

export { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./log-options.js";
import type { LogFormat, LogLevel } from "./log-options.js";

/** The parts of the server, as the `component` field names them. */
export type Component = "server" | "engine" | "dispatch" | "api" | "database" | "embedded-postgres" | "cli" | "process" | "schedule";

/** Anything lines can be written to: a stream, or `{ write }` over a function (the CLI's output, a test's array). */
export interface LogSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  /** Default "info". */
  level?: LogLevel;
  /** Default "auto". */
  format?: LogFormat;
  /** Where lines go (default: stdout). */
  sink?: LogSink;
  /** Whether the sink is a terminal, for format "auto" (default: whether stdout is one, when sink is stdout). */
  isTTY?: boolean;
  /** Colours in pretty output (default: isTTY). */
  colorize?: boolean;
}

/**
 * A logger writing JSON lines (or pretty lines) at `level` and above.
 *
 * @example
 *   const log = createLogger({ level: "debug" });
 *   log.child({ component: "engine" }).info({ run_id: uid, state: "SUCCEEDED" }, "run finished");
 *
 * @example
 *   // In a test: every line into memory, parsed.
 *   const lines: object[] = [];
 *   const log = createLogger({ level: "debug", format: "json", sink: { write: (l) => lines.push(JSON.parse(l)) } });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const isTTY = options.isTTY ?? (options.sink ? false : Boolean(process.stdout.isTTY));
  const format = options.format ?? "auto";
  const pretty = format === "pretty" || (format === "auto" && isTTY);
  const out = options.sink ?? pino.destination({ dest: 1, sync: true });
  if (pretty) {
    const prettify = loadPretty()({
      colorize: options.colorize ?? isTTY,
      translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
      ignore: "pid,hostname,component",
      messageFormat: "{if component}{component}: {end}{msg}",
      singleLine: true,
      errorLikeObjectKeys: ["err"],
    } satisfies PrettyOptions);
    return pino({ level, base: undefined }, { write: (line: string) => out.write(prettify(line)) } as DestinationStream);
  }
  return pino(
    {
      level,
      // "level":"info" rather than 30: readable by people and by log stores without a table.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    out as DestinationStream,
  );
}

/** A logger that writes nothing (tests and embedders that pass none). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/** A child logger for one part of the server: make it from the root logger, not from another component's (pino would write `component` twice). */
export function componentLogger(log: Logger, component: Component): Logger {
  return log.child({ component });
}

/** At most this many lines about the items of one event (attempts re-queued together): the rest is one summary line. */
export const MAX_LINES_PER_EVENT = 100;
