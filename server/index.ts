// @pipewright/server: the orchestration server, to start from code (the
// `pipewright` command starts it from a shell: `pipewright server --help`),
// and the command line itself (runCli).
// @example
//   import { startServer, createLogger, DEFAULT_CONFIG } from "@pipewright/server";
//   const server = await startServer({ ...DEFAULT_CONFIG, address: "127.0.0.1:0" }, createLogger({ level: "info" })); // no logger: silent
//   console.log(server.address);
//   await server.stop();

export { startServer, type RunningServer } from "./server.js";
export { DEFAULT_CONFIG, OPTIONS, parseConfig, type ServerConfig } from "./config.js";
export { runCli } from "./cli/program.js";
export { createLogger, silentLogger, LOG_LEVELS, LOG_FORMATS, type Logger, type LoggerOptions, type LogLevel, type LogFormat } from "./observe/logger.js";
