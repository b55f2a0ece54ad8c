// The logger's levels and formats, apart from the logger itself: server/config.ts
// declares its options with them, and the command line reads that for every
// verb without loading pino (only `pipewright server` logs).

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ["auto", "json", "pretty"] as const;
/** `auto`: pretty when the output is a terminal, JSON lines otherwise. */
export type LogFormat = (typeof LOG_FORMATS)[number];
