// A real logger (server/observe/logger.ts, JSON lines) writing into memory, for
// tests that read what the server logged: each line kept as written and parsed.

import { createLogger, type Logger, type LogLevel } from "../../server/observe/logger.js";

export interface LogLine {
  level: string;
  time: string;
  msg: string;
  component?: string;
  [field: string]: unknown;
}

export interface MemoryLog {
  logger: Logger;
  /** Every line as written (one JSON object each, newline-terminated). */
  raw: string[];
  /** Every line, parsed. */
  lines(): LogLine[];
  /** The messages, in order. */
  messages(): string[];
}

export function memoryLog(level: LogLevel = "debug"): MemoryLog {
  const raw: string[] = [];
  const logger = createLogger({ level, format: "json", sink: { write: (line: string) => void raw.push(line) } });
  return {
    logger,
    raw,
    lines: () => raw.map((l) => JSON.parse(l) as LogLine),
    messages: () => raw.map((l) => (JSON.parse(l) as LogLine).msg),
  };
}
