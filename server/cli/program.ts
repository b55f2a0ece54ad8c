// The `pipewright` command: the server, and a client for people and scripts
// (submit, get, list, watch, cancel, pause, resume, signal, delete, resubmit, counts;
// workers, status and breakers are in admin-verbs.ts). Argument parsing is commander's; every verb that reads takes
// `-o table|json`; `--address` (or PIPEWRIGHT_ADDRESS) names the server; an
// error is one line and an exit code (output.ts, README "Command line").

import { durationFromMs, timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Command, CommanderError, Option } from "commander";
import { CountRunsResponseSchema, RunSchema, RunState, RunView, SubmitRunRequestSchema, type Run, type SubmitRunRequest } from "@pipewright/protocol";
import { PipewrightClient } from "@pipewright/client";
import { CliError, EXIT, exitCodeOf, formatTime, keyValues, outcomeLine, parseRunStates, runDuration, runStateName, table } from "./output.js";
import { processIo, type Io } from "./io.js";
import { addTlsOptions, withConnection, type ConnectionOptions } from "./connection.js";
import { addServerCommand } from "./serve.js";
import { addTokenCommand, addTokenOptions } from "./token.js";
import { StepTree } from "./step-tree.js";
import { watchRun } from "./watch.js";
import { addAdminCommands } from "./admin-verbs.js";
import { addScheduleCommands } from "./schedule-verbs.js";
import { addEventCommands } from "./event-verbs.js";

const DEFAULT_ADDRESS = "127.0.0.1:50051";

export type { Io };

/** Runs the command line; resolves with the exit code (a running server resolves only when it stops). */
export async function runCli(argv: string[], io: Io = processIo): Promise<number> {
  let code = EXIT.ok as number;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      io.err(`${err.message}\n`);
      return err.exitCode;
    }
    io.err(`error: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.internal;
  }
  return code;
}

function buildProgram(io: Io, exit: (code: number) => void): Command {
  const program = new Command("pipewright")
    .description("Pipewright: run the orchestration server, submit and follow runs")
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .showHelpAfterError("(pipewright --help, or pipewright COMMAND --help)");

  addServerCommand(program, io, exit);

  // ---- runs ---------------------------------------------------------------------
  const address = () => new Option("-a, --address <host:port>", "the server").env("PIPEWRIGHT_ADDRESS").default(DEFAULT_ADDRESS);
  const output = () => new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table");

  program
    .command("submit")
    .description("submit a pipeline: a Pipeline, or a whole SubmitRunRequest, in protobuf JSON, from FILE or - (stdin)")
    .argument("<file>", "the JSON file, or - for standard input")
    .option("--name <name>", "the run's name")
    .option("--request-id <id>", "idempotency key: the same id gives the same run (default: a new one)")
    .option("--start-at <time>", "start it at this time (ISO 8601, e.g. 2026-12-01T09:00:00Z): nothing runs before")
    .option("--delay <ms>", "start it this many milliseconds after submission")
    .option("--wait", "wait for the run to end: print its result, exit with its outcome")
    .addOption(address())
    .addOption(output())
    .action((file: string, opts) =>
      withClient(opts, async (client) => {
        const request = readSubmission(file === "-" ? io.stdin() : readInput(file));
        if (opts.name) request.name = opts.name;
        request.requestId = opts.requestId ?? (request.requestId || randomUUID());
        if (opts.startAt !== undefined) {
          const at = new Date(opts.startAt);
          if (Number.isNaN(at.getTime())) throw new CliError(`error: --start-at: not a time: ${JSON.stringify(opts.startAt)} (use ISO 8601)`, EXIT.usage);
          request.startTime = timestampFromDate(at);
        }
        if (opts.delay !== undefined) request.startDelay = durationFromMs(positive(opts.delay, "--delay"));
        const { run } = await client.rpc.submitRun(request);
        if (!opts.wait) {
          io.out(opts.output === "json" ? `${JSON.stringify(toJson(RunSchema, run!))}\n` : `${run!.id}\n`);
          return;
        }
        const done = await waitUntilDone(client, run!.id);
        if (opts.output === "json") io.out(`${JSON.stringify(toJson(RunSchema, done))}\n`);
        else if (done.state === RunState.SUCCEEDED) io.out(`${outcomeLine(done)}\n`);
        else io.err(`run ${done.id} ${runStateName(done.state)}: ${outcomeLine(done)}\n`);
        exit(exitCodeOf(done.state));
      }),
    );

  program
    .command("get")
    .description("show a run")
    .argument("<run>", "the run id")
    .option("--steps", "with its tree of steps")
    .addOption(address())
    .addOption(output())
    .action((runId: string, opts) =>
      withClient(opts, async (client) => {
        const { run } = await client.rpc.getRun({ runId, view: opts.steps ? RunView.FULL : RunView.BASIC });
        if (opts.output === "json") return io.out(`${JSON.stringify(toJson(RunSchema, run!), null, 2)}\n`);
        io.out(`${describeRun(run!)}\n`);
        if (opts.steps)
          io.out(
            `${new StepTree(run!.steps).lines().join("\n")}\n${run!.stepsTruncated ? "(steps left out: the run is too big to show whole; watch it instead)\n" : ""}`,
          );
      }),
    );

  program
    .command("list")
    .description("list runs, newest first")
    .option("--state <states...>", "only runs in these states (running, paused, cancelling, succeeded, failed, cancelled)")
    .option("--name <name>", "only runs of this name")
    .option("--scheduled", "only runs whose delayed start is still ahead")
    .option("--limit <n>", "at most this many runs", "20")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withClient(opts, async (client) => {
        const limit = positive(opts.limit, "--limit");
        const states = parseRunStates(opts.state ?? []);
        const found: Run[] = [];
        for (let token = "", first = true; (first || token) && found.length < limit; first = false) {
          const page = await client.rpc.listRuns({
            states,
            name: opts.name ?? "",
            scheduled: opts.scheduled === true,
            pageSize: Math.min(1000, limit - found.length),
            pageToken: token,
          });
          found.push(...page.runs);
          token = page.nextPageToken;
        }
        if (opts.output === "json")
          return io.out(
            `${JSON.stringify(
              found.map((r) => toJson(RunSchema, r)),
              null,
              2,
            )}\n`,
          );
        io.out(
          `${table(
            ["ID", "NAME", "STATE", "CREATED", "DURATION"],
            found.map((r) => [r.id, r.name, listedState(r), formatTime(r.createTime), runDuration(r.createTime, r.finishTime)]),
          )}\n`,
        );
      }),
    );

  for (const verb of ["cancel", "pause", "resume"] as const) {
    const cmd = program.command(verb).description(`${verb} a run`).argument("<run>", "the run id").addOption(address()).addOption(output());
    if (verb === "cancel") cmd.option("--reason <reason>", "why (kept with the run)");
    cmd.action((runId: string, opts) =>
      withClient(opts, async (client) => {
        const call =
          verb === "cancel"
            ? client.rpc.cancelRun({ runId, reason: opts.reason ?? "" })
            : verb === "pause"
              ? client.rpc.pauseRun({ runId })
              : client.rpc.resumeRun({ runId });
        const { run } = await call;
        io.out(opts.output === "json" ? `${JSON.stringify(toJson(RunSchema, run!))}\n` : `run ${runId} ${runStateName(run!.state)}\n`);
      }),
    );
  }

  program
    .command("signal")
    .description("send a signal to a run: the first step waiting for NAME takes PAYLOAD as its result (or it is kept until one waits)")
    .argument("<run>", "the run id")
    .argument("<name>", "the signal's name (Wait.signal)")
    .option("--payload <json>", "the payload, as JSON (default: none)")
    .option("--id <signal-id>", "idempotency key: a repeat with the same id is applied once")
    .addOption(address())
    .addOption(output())
    .action((runId: string, name: string, opts) =>
      withClient(opts, async (client) => {
        let payload: unknown;
        try {
          payload = opts.payload === undefined ? undefined : JSON.parse(opts.payload);
        } catch (err) {
          throw new CliError(`error: --payload: not JSON: ${(err as Error).message}`, EXIT.usage);
        }
        const sent = await client.run(runId).signal(name, payload, { signalId: opts.id });
        if (opts.output === "json") return io.out(`${JSON.stringify({ run: toJson(RunSchema, sent.run), delivery: sent.delivery })}\n`);
        const what = {
          delivered: "delivered to a waiting step",
          kept: "kept until a step waits for it",
          duplicate: "a repeat of a signal already applied: nothing changed",
          unknown: "applied by the server process that owns the run",
        }[sent.delivery];
        io.out(`signal ${name} to run ${runId}: ${what}\n`);
      }),
    );

  program
    .command("resubmit")
    .description("start a new run with the pipeline, name and run timeout of an existing run")
    .argument("<run>", "the run id")
    .option("--request-id <id>", "idempotency key of the new run (default: a new one)")
    .addOption(address())
    .addOption(output())
    .action((runId: string, opts) =>
      withClient(opts, async (client) => {
        const { run } = await client.rpc.resubmitRun({ runId, requestId: opts.requestId ?? randomUUID() });
        io.out(opts.output === "json" ? `${JSON.stringify(toJson(RunSchema, run!))}\n` : `${run!.id}\n`);
      }),
    );

  program
    .command("counts")
    .description("how many runs are in each state (each count stops at 10,000)")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withClient(opts, async (client) => {
        const res = await client.rpc.countRuns({});
        if (opts.output === "json") return io.out(`${JSON.stringify(toJson(CountRunsResponseSchema, res))}\n`);
        io.out(
          `${table(
            ["STATE", "RUNS"],
            res.counts.map((c) => [runStateName(c.state), `${c.count}${c.capped ? "+" : ""}`]),
          )}\n`,
        );
      }),
    );

  program
    .command("delete")
    .description("delete a finished run with its events (an active run: cancel it first)")
    .argument("<run>", "the run id")
    .addOption(address())
    .addOption(output())
    .action((runId: string, opts) =>
      withClient(opts, async (client) => {
        await client.rpc.deleteRun({ runId });
        io.out(opts.output === "json" ? `${JSON.stringify({ runId, deleted: true })}\n` : `run ${runId} deleted\n`);
      }),
    );

  program
    .command("watch")
    .description("follow a run's tree of steps live; exit with its outcome")
    .argument("<run>", "the run id")
    .addOption(address())
    .addOption(output())
    .action((runId: string, opts) =>
      withClient(opts, async (client) => {
        exit(await watchRun(client, runId, { write: io.out, isTTY: io.isTTY, rows: io.rows }, opts.output === "json"));
      }),
    );

  addAdminCommands(program, io, address, output);
  addScheduleCommands(program, io, address, output);
  addEventCommands(program, io, address, output);

  addTokenCommand(program, io);
  addTokenOptions(program);
  addTlsOptions(program);
  return program;
}

/** A run's state as `list` shows it: "scheduled (starts …)" for a running run whose delayed start is ahead. */
function listedState(r: Run): string {
  if (r.state === RunState.RUNNING && r.startTime && timestampMs(r.startTime) > Date.now()) return `scheduled (starts ${formatTime(r.startTime)})`;
  return runStateName(r.state);
}

function positive(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`error: ${name} must be a whole number >= 1, got ${JSON.stringify(text)}`, EXIT.usage);
  return n;
}

function readInput(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** A SubmitRunRequest (it has a "pipeline") or a Pipeline, in protobuf JSON. */
function readSubmission(text: string): SubmitRunRequest {
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new CliError(`error: the input is not JSON: ${(err as Error).message}`, EXIT.usage);
  }
  try {
    if (json && typeof json === "object" && !Array.isArray(json) && "pipeline" in json) return fromJson(SubmitRunRequestSchema, json);
    return fromJson(SubmitRunRequestSchema, { pipeline: json });
  } catch (err) {
    throw new CliError(`error: the input is not a Pipeline or SubmitRunRequest in protobuf JSON: ${(err as Error).message}`, EXIT.usage);
  }
}

/** Waits for a run's end, a minute at a time. */
async function waitUntilDone(client: PipewrightClient, runId: string): Promise<Run> {
  for (;;) {
    const { run, done } = await client.rpc.waitRun({ runId, timeout: { seconds: 60n, nanos: 0 } });
    if (done) return run!;
  }
}

function describeRun(run: Run): string {
  const pairs: [string, string][] = [
    ["run", run.id],
    ["name", run.name],
    ["state", runStateName(run.state)],
    ["created", formatTime(run.createTime)],
    ["finished", formatTime(run.finishTime)],
    ["duration", runDuration(run.createTime, run.finishTime)],
    ["tasks", String(run.taskCount)],
  ];
  const outcome = outcomeLine(run);
  if (outcome) pairs.push([run.state === RunState.SUCCEEDED ? "result" : "error", outcome]);
  return keyValues(pairs.filter(([, v]) => v));
}

/** Where and how a client verb calls the server: --address, --token and the TLS files. */
function withClient(opts: ConnectionOptions, body: (client: PipewrightClient) => Promise<void>): Promise<void> {
  return withConnection(opts, (address, options) => new PipewrightClient(address, options), body);
}
