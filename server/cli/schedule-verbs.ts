// `pipewright schedule create|get|list|update|delete|pause|resume|trigger|fires`:
// schedules through the client's ScheduleService API (client.schedules).
// create and update read the pipeline as `submit` does: a Pipeline or a
// SubmitRunRequest in protobuf JSON (its name and run_timeout become the
// schedule's run name and timeout), or a binary Pipeline (.binpb), from FILE
// or - (stdin).

import { readFileSync } from "node:fs";
import { fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Command, Option } from "commander";
import { PipelineSchema, SubmitRunRequestSchema } from "@pipewright/protocol";
import { PipewrightClient, type FireInfo, type OverlapPolicy, type ScheduleInfo, type ScheduleOptions } from "@pipewright/client";
import { CliError, EXIT, keyValues, table } from "./output.js";
import type { Io } from "./io.js";
import { withConnection, type ConnectionOptions } from "./connection.js";

const OVERLAPS: Record<string, OverlapPolicy> = { skip: "skip", allow: "allow", "cancel-previous": "cancel_previous" };

/** Adds `schedule` and its verbs; `address` and `output` make the options every client verb takes. */
export function addScheduleCommands(program: Command, io: Io, address: () => Option, output: () => Option): void {
  const schedule = program.command("schedule").description("pipelines started on a cron schedule (with seconds, in a time zone), exactly once per fire");
  const settings = (cmd: Command, required: boolean) =>
    cmd
      .option("--cron <expr>", `cron: 6 fields with seconds ("*/10 * * * * *") or 5 ("0 9 * * MON-FRI")${required ? " (required)" : ""}`)
      .option(
        "--pipeline <file>",
        `the pipeline: protobuf JSON (a Pipeline or SubmitRunRequest) or a binary Pipeline (.binpb), or - for stdin${required ? " (required)" : ""}`,
      )
      .option("--time-zone <zone>", "IANA time zone the cron is read in (default UTC)")
      .addOption(new Option("--overlap <policy>", "while an earlier run is active: skip, allow, cancel-previous (default skip)").choices(Object.keys(OVERLAPS)))
      .option("--catchup-window <ms>", "after downtime, start missed fires this recent (default 60000; the latest missed one always)")
      .option("--run-name <name>", "each run's name (default: the schedule id)")
      .option("--run-timeout <ms>", "each run's run timeout")
      .addOption(address())
      .addOption(output());

  settings(schedule.command("create").description("create a schedule").argument("<id>", "the schedule id (letters, digits, . _ -)"), true).action(
    (id: string, opts) =>
      withSchedules(opts, async (client) => {
        if (!opts.cron || !opts.pipeline) throw new CliError("error: schedule create needs --cron and --pipeline", EXIT.usage);
        show(io, opts.output, await client.schedules.create(optionsOf(id, opts, io)));
      }),
  );

  settings(
    schedule.command("update").description("change a schedule: the options given replace its settings").argument("<id>", "the schedule id"),
    false,
  ).action((id: string, opts) =>
    withSchedules(opts, async (client) => {
      const current = await client.schedules.get(id);
      show(io, opts.output, await client.schedules.update(optionsOf(id, opts, io, current)));
    }),
  );

  schedule
    .command("get")
    .description("show a schedule")
    .argument("<id>", "the schedule id")
    .addOption(address())
    .addOption(output())
    .action((id: string, opts) => withSchedules(opts, async (client) => show(io, opts.output, await client.schedules.get(id))));

  schedule
    .command("list")
    .description("the schedules, by id")
    .option("--page-size <n>", "schedules per page (1 to 1000)", "100")
    .option("--page-token <token>", "the page after a previous one")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withSchedules(opts, async (client) => {
        const page = await client.schedules.list({ pageSize: whole(opts.pageSize, "--page-size"), pageToken: opts.pageToken });
        if (opts.output === "json") return io.out(`${JSON.stringify({ schedules: page.schedules.map(jsonOf), nextPageToken: page.nextPageToken }, null, 2)}\n`);
        io.out(
          `${table(
            ["ID", "CRON", "ZONE", "OVERLAP", "STATE", "NEXT FIRE", "LAST FIRE"],
            page.schedules.map((s) => [s.id, s.cron, s.timeZone, s.overlap, s.paused ? "paused" : "active", time(s.nextFireAt), time(s.lastFireAt)]),
          )}\n`,
        );
        if (page.nextPageToken) io.err(`more: --page-token ${page.nextPageToken}\n`);
      }),
    );

  for (const verb of ["delete", "pause", "resume"] as const) {
    schedule
      .command(verb)
      .description(`${verb} a schedule`)
      .argument("<id>", "the schedule id")
      .addOption(address())
      .addOption(output())
      .action((id: string, opts) =>
        withSchedules(opts, async (client) => {
          if (verb === "delete") return void (await client.schedules.delete(id), io.out(`deleted ${id}\n`));
          show(io, opts.output, await client.schedules[verb](id));
        }),
      );
  }

  schedule
    .command("trigger")
    .description("fire a schedule now (under its overlap policy); prints the run id")
    .argument("<id>", "the schedule id")
    .option("--request-id <id>", "idempotency key: the same key gives the same fire and run")
    .addOption(address())
    .addOption(output())
    .action((id: string, opts) =>
      withSchedules(opts, async (client) => {
        const fire = await client.schedules.trigger(id, { requestId: opts.requestId });
        if (opts.output === "json") return io.out(`${JSON.stringify(fire, null, 2)}\n`);
        io.out(fire.runId ? `${fire.runId}\n` : `skipped: ${fire.reason}\n`);
      }),
    );

  schedule
    .command("fires")
    .description("a schedule's fires, newest first, with the runs they started")
    .argument("<id>", "the schedule id")
    .option("--page-size <n>", "fires per page (1 to 1000)", "100")
    .option("--page-token <token>", "the page after a previous one")
    .addOption(address())
    .addOption(output())
    .action((id: string, opts) =>
      withSchedules(opts, async (client) => {
        const page = await client.schedules.fires(id, { pageSize: whole(opts.pageSize, "--page-size"), pageToken: opts.pageToken });
        if (opts.output === "json") return io.out(`${JSON.stringify(page, null, 2)}\n`);
        io.out(
          `${table(
            ["FIRE TIME", "OUTCOME", "RUN", "REASON"],
            page.fires.map((f: FireInfo) => [f.fireAt.toISOString(), f.triggered ? `${f.outcome} (trigger)` : f.outcome, f.runId ?? "", f.reason]),
          )}\n`,
        );
        if (page.nextPageToken) io.err(`more: --page-token ${page.nextPageToken}\n`);
      }),
    );
}

/** The schedule the options describe; for update, over its current settings. */
function optionsOf(id: string, opts: Record<string, string | undefined>, io: Io, current?: ScheduleInfo): ScheduleOptions {
  const fromFile = opts.pipeline ? readPipeline(opts.pipeline, io) : undefined;
  const pipeline = fromFile?.pipeline ?? current?.pipeline;
  if (!pipeline) throw new CliError("error: --pipeline is required", EXIT.usage);
  return {
    id,
    cron: opts.cron ?? current!.cron,
    pipeline,
    timeZone: opts.timeZone ?? current?.timeZone,
    overlap: opts.overlap ? OVERLAPS[opts.overlap] : current?.overlap,
    catchupWindowMs: opts.catchupWindow !== undefined ? whole(opts.catchupWindow, "--catchup-window", 0) : current?.catchupWindowMs,
    runName: opts.runName ?? fromFile?.name ?? current?.runName,
    runTimeoutMs: opts.runTimeout !== undefined ? whole(opts.runTimeout, "--run-timeout", 0) : (fromFile?.runTimeoutMs ?? current?.runTimeoutMs),
  };
}

/** A Pipeline or SubmitRunRequest in protobuf JSON, or a binary Pipeline. */
function readPipeline(file: string, io: Io): { pipeline: ScheduleInfo["pipeline"]; name?: string; runTimeoutMs?: number } {
  let bytes: Buffer;
  try {
    bytes = file === "-" ? Buffer.from(io.stdin()) : readFileSync(file);
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`, EXIT.usage);
  }
  const text = bytes.toString("utf8").trim();
  try {
    if (!text.startsWith("{")) return { pipeline: fromBinary(PipelineSchema, bytes) };
    const json = JSON.parse(text) as JsonValue;
    if (json && typeof json === "object" && !Array.isArray(json) && "pipeline" in json) {
      const r = fromJson(SubmitRunRequestSchema, json);
      return { pipeline: r.pipeline, name: r.name || undefined, runTimeoutMs: r.runTimeout ? durationMs(r.runTimeout) : undefined };
    }
    return { pipeline: fromJson(PipelineSchema, json) };
  } catch (err) {
    throw new CliError(`error: ${file} is not a Pipeline or SubmitRunRequest (protobuf JSON) or a binary Pipeline: ${(err as Error).message}`, EXIT.usage);
  }
}

function whole(text: string | undefined, name: string, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new CliError(`error: ${name} must be a whole number >= ${min}, got ${JSON.stringify(text)}`, EXIT.usage);
  return n;
}

function time(d: Date | undefined): string {
  return d
    ? d
        .toISOString()
        .replace("T", " ")
        .replace(/\.000Z$/, "Z")
    : "";
}

function jsonOf(s: ScheduleInfo): Record<string, unknown> {
  return { ...s, pipeline: undefined };
}

function show(io: Io, format: string, s: ScheduleInfo): void {
  if (format === "json") return io.out(`${JSON.stringify(jsonOf(s), null, 2)}\n`);
  const pairs: [string, string][] = [
    ["schedule", s.id],
    ["cron", s.cron],
    ["time zone", s.timeZone],
    ["overlap", s.overlap],
    ["catch-up window", `${s.catchupWindowMs} ms`],
    ["run name", s.runName || `(${s.id})`],
    ["run timeout", s.runTimeoutMs ? `${s.runTimeoutMs} ms` : ""],
    ["state", s.paused ? "paused" : "active"],
    ["next fire", time(s.nextFireAt)],
    ["last fire", time(s.lastFireAt)],
    ["created", time(s.createdAt)],
  ];
  io.out(`${keyValues(pairs.filter(([, v]) => v))}\n`);
}

function withSchedules(opts: ConnectionOptions, body: (client: PipewrightClient) => Promise<void>): Promise<void> {
  return withConnection(opts, (address, options) => new PipewrightClient(address, options), body);
}
