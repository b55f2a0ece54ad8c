// `pipewright server` (and `npm start`): the server's flags, one per configuration
// option (config.ts), and running it until SIGINT/SIGTERM.

import v8 from "node:v8";
import { Command, Option } from "commander";
import { OPTIONS, parseConfig } from "../config.js";
import type { Io } from "./io.js";
import { guardProcess } from "./process-guard.js";
import { CliError, EXIT } from "./output.js";

/** Adds the `server` verb to the program; `exit` receives the exit code when the server stops. */
export function addServerCommand(program: Command, io: Io, exit: (code: number) => void): void {
  const server = program.command("server").description("run the Pipewright server (flags, or their environment variables)");
  for (const o of OPTIONS) {
    const flag = o.kind === "boolean" ? o.flag : `${o.flag} <${o.kind === "integer" ? "n" : o.kind === "choice" ? "name" : "value"}>`;
    server.addOption(new Option(flag, `${o.help} (default: ${o.default || "unset"})`).env(o.env));
  }
  server.action(async (_opts, cmd: Command) => {
    // Flags given on the command line; parseConfig reads the rest from the environment, as `npm start` does.
    const argv: string[] = [];
    for (const o of OPTIONS) {
      const value = cmd.getOptionValue(optionKey(o.flag));
      if (value === undefined || cmd.getOptionValueSource(optionKey(o.flag)) !== "cli") continue;
      argv.push(o.kind === "boolean" ? o.flag : `${o.flag}=${value}`);
    }
    const config = parseConfigOrUsage(argv);
    exit(await serve(config, io));
  });
}

/** Runs the server until SIGINT/SIGTERM; resolves with the exit code. */
async function serve(config: ReturnType<typeof parseConfig>, io: Io): Promise<number> {
  // V8 lets the heap grow to up to four times what was live at the last full collection
  // before it collects again: a 100,000-branch run keeps ~150 MB live, and the heap grew to
  // 630 MB resident. Growing by at most half keeps the peak near 450 MB for the same run
  // time (bench fanout); the price is more full collections (throughput within noise in
  // one A/B, up to 15% in another). A --heap-growing-percent given to node wins.
  if (!process.execArgv.some((a) => a.startsWith("--heap-growing-percent"))) v8.setFlagsFromString("--heap-growing-percent=50");
  // The server and its logger are loaded for this verb only: every other verb is a client,
  // and starts faster without them (a `pipewright watch` run right after a submit must be
  // attached before a short task ends).
  const [{ startServer }, { componentLogger, createLogger }] = await Promise.all([import("../server.js"), import("../observe/logger.js")]);
  const logger = createLogger({ level: config.verbose ? "debug" : config.logLevel, format: config.logFormat, sink: { write: io.out }, isTTY: io.isTTY });
  const log = componentLogger(logger, "cli");
  guardProcess(componentLogger(logger, "process"));
  const server = await startServer(config, logger);
  const scheme = config.tlsCert ? "https" : "http";
  // Always written, whatever the level: it says where the server listens (scripts and tests wait for it).
  log.child({}, { level: "info" }).info(
    {
      address: server.address,
      database: server.database,
      process_id: server.processId,
      metrics_address: server.metricsAddress,
      dashboard_address: server.dashboardAddress,
    },
    `pipewright listening on ${server.address}, database: ${server.database}` +
      (server.metricsAddress ? `, metrics: ${scheme}://${server.metricsAddress}/metrics` : "") +
      (server.dashboardAddress ? `, dashboard: ${scheme}://${server.dashboardAddress}/` : ""),
  );
  return new Promise<number>((resolve) => {
    let signals = 0;
    const shutdown = (signal: string) => {
      if (++signals > 1) {
        log.warn({ signal }, `${signal} again: exiting without waiting`);
        process.exit(1);
      }
      log.info({ signal }, `${signal}: draining workers and stopping`);
      // The server bounds its own stop (drain grace + a few seconds); this is the backstop.
      setTimeout(() => {
        log.error({ signal }, `still stopping ${config.drainGraceMs + 20_000} ms after ${signal}: exiting`);
        process.exit(1);
      }, config.drainGraceMs + 20_000).unref();
      server.stop().then(
        () => resolve(EXIT.ok),
        (err) => {
          log.error({ err }, `shutdown failed: ${err?.message ?? err}`);
          resolve(EXIT.internal);
        },
      );
    };
    process.on("SIGINT", () => shutdown("SIGINT"));
    process.on("SIGTERM", () => shutdown("SIGTERM"));
  });
}

function optionKey(flag: string): string {
  return flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseConfigOrUsage(argv: string[]) {
  try {
    return parseConfig(argv, process.env);
  } catch (err) {
    throw new CliError(`error: ${(err as Error).message}`, EXIT.usage);
  }
}
