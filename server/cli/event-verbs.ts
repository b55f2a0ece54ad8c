// `pipewright event publish|list` and `pipewright trigger create|get|list|delete|pause|resume`:
// EventService from the command line (README "Events and triggers").

import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import {
  createClient,
  decodeValue,
  encodeValue,
  EventSchema,
  EventService,
  PipelineSchema,
  SubmitRunRequestSchema,
  TriggerSchema,
  type Pipeline,
  type Trigger,
} from "@pipewright/protocol";
import { addTlsOptions, withConnection, type ConnectionOptions } from "./connection.js";
import { CliError, EXIT, formatTime, keyValues, table } from "./output.js";
import type { Io } from "./io.js";
import { addTokenOptions } from "./token.js";

type Events = ReturnType<typeof createClient<typeof EventService>>;

/** Adds `event` and `trigger`; `address` and `output` make the options every client verb takes. */
export function addEventCommands(program: Command, io: Io, address: () => Option, output: () => Option): void {
  const event = program.command("event").description("publish events, list recent ones");
  event
    .command("publish")
    .description("publish an event: each matching trigger starts one run, the payload as its first argument")
    .argument("<name>", "the event's name (letters, digits and _ . : / -)")
    .option("--payload <json>", "the payload, as JSON", "null")
    .option("--id <id>", "the event id: publishing the same id again starts nothing new (default: a new one)")
    .addOption(address())
    .addOption(output())
    .action((name: string, opts) =>
      withEvents(opts, async (events) => {
        const r = await events.publishEvent({ name, payload: encodeValue(parseJson(opts.payload, "--payload")), eventId: opts.id ?? "" });
        if (opts.output === "json") return io.out(`${JSON.stringify({ eventId: r.eventId, duplicate: r.duplicate, runs: r.runs.map(plainRun) }, null, 2)}\n`);
        io.out(`event ${r.eventId}${r.duplicate ? " (published before: nothing new started)" : ""}\n`);
        if (r.runs.length)
          io.out(
            `${table(
              ["TRIGGER", "RUN", "ERROR"],
              r.runs.map((x) => [x.triggerId, x.runId, x.error]),
            )}\n`,
          );
      }),
    );
  event
    .command("list")
    .description("recent events, newest first")
    .option("--name <name>", "only events of this name")
    .option("--limit <n>", "at most this many (1 to 1000)", "20")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withEvents(opts, async (events) => {
        const { events: list } = await events.listEvents({ name: opts.name ?? "", pageSize: Number(opts.limit) });
        if (opts.output === "json")
          return io.out(
            `${JSON.stringify(
              list.map((e) => toJson(EventSchema, e)),
              null,
              2,
            )}\n`,
          );
        const rows = list.map((e) => [e.eventId, e.name, formatTime(e.publishTime), e.triggerTime ? String(e.runs.length) : "pending", preview(e.payload)]);
        io.out(`${table(["EVENT", "NAME", "PUBLISHED", "RUNS", "PAYLOAD"], rows)}\n`);
      }),
    );
  addTokenOptions(event);
  addTlsOptions(event);

  const trigger = program.command("trigger").description("what events start: create, get, list, delete, pause, resume triggers");
  trigger
    .command("create")
    .description("create a trigger running a pipeline (protobuf JSON, a Pipeline or a SubmitRunRequest, from FILE or -) on each event of a name")
    .argument("<id>", "the trigger's id, unique in the namespace (letters, digits and _ . -)")
    .argument("<file>", "the pipeline's JSON file, or - for standard input")
    .requiredOption("--event <name>", "the event name that starts it")
    .option("--filter <path=json...>", "a condition on the payload: the JSON at PATH (a.b.0) equals JSON; all must hold")
    .option("--run-name <name>", "the name of the runs it starts")
    .option("--run-timeout-ms <ms>", "the run timeout of the runs it starts")
    .addOption(address())
    .addOption(output())
    .action((id: string, file: string, opts) =>
      withEvents(opts, async (events) => {
        const { pipeline, name, runTimeout } = readPipeline(file === "-" ? io.stdin() : readFile(file));
        const filter = ((opts.filter as string[] | undefined) ?? []).map(parseCondition);
        const timeout = opts.runTimeoutMs !== undefined ? durationFromMs(Number(opts.runTimeoutMs)) : runTimeout;
        const { trigger: t } = await events.createTrigger({
          trigger: { triggerId: id, eventName: opts.event, filter, pipeline, runName: opts.runName ?? name, runTimeout: timeout },
        });
        printTrigger(io, t!, opts.output);
      }),
    );
  for (const [verb, description] of [
    ["get", "show a trigger"],
    ["pause", "pause a trigger: events published meanwhile do not start it"],
    ["resume", "resume a paused trigger"],
    ["delete", "delete a trigger (the runs it started stay)"],
  ] as const)
    trigger
      .command(verb)
      .description(description)
      .argument("<id>", "the trigger's id")
      .addOption(address())
      .addOption(output())
      .action((triggerId: string, opts) =>
        withEvents(opts, async (events) => {
          if (verb === "delete") {
            await events.deleteTrigger({ triggerId });
            return io.out(opts.output === "json" ? "{}\n" : `deleted trigger ${triggerId}\n`);
          }
          const call = verb === "get" ? events.getTrigger : verb === "pause" ? events.pauseTrigger : events.resumeTrigger;
          printTrigger(io, (await call({ triggerId })).trigger!, opts.output);
        }),
      );
  trigger
    .command("list")
    .description("the namespace's triggers, by id")
    .option("--limit <n>", "at most this many (1 to 1000)", "100")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withEvents(opts, async (events) => {
        const { triggers } = await events.listTriggers({ pageSize: Number(opts.limit) });
        if (opts.output === "json")
          return io.out(
            `${JSON.stringify(
              triggers.map((t) => toJson(TriggerSchema, t)),
              null,
              2,
            )}\n`,
          );
        const rows = triggers.map((t) => [t.triggerId, t.eventName, String(t.filter.length), t.paused ? "paused" : "active", formatTime(t.createTime)]);
        io.out(`${table(["TRIGGER", "EVENT", "CONDITIONS", "STATE", "CREATED"], rows)}\n`);
      }),
    );
  addTokenOptions(trigger);
  addTlsOptions(trigger);
}

function printTrigger(io: Io, t: Trigger, format: string): void {
  if (format === "json") return io.out(`${JSON.stringify(toJson(TriggerSchema, t), null, 2)}\n`);
  const pairs: [string, string][] = [
    ["trigger", t.triggerId],
    ["event", t.eventName],
    ["filter", t.filter.map((c) => `${c.path || "(payload)"} = ${c.equals}`).join(", ")],
    ["run name", t.runName],
    ["state", t.paused ? "paused" : "active"],
    ["created", formatTime(t.createTime)],
  ];
  io.out(`${keyValues(pairs.filter(([, v]) => v))}\n`);
}

function plainRun(r: { triggerId: string; runId: string; error: string }) {
  return { triggerId: r.triggerId, runId: r.runId, error: r.error };
}

function preview(v: Parameters<typeof decodeValue>[0]): string {
  let text: string;
  try {
    text = JSON.stringify(decodeValue(v)) ?? "null";
  } catch {
    text = "(not JSON)";
  }
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`error: ${what} is not JSON: ${(err as Error).message}`, EXIT.usage);
  }
}

/** "path=json" (the first "=" splits): a FilterCondition. */
function parseCondition(text: string): { path: string; equals: string } {
  const i = text.indexOf("=");
  if (i < 0) throw new CliError(`error: --filter: expected PATH=JSON, got ${JSON.stringify(text)}`, EXIT.usage);
  const equals = text.slice(i + 1);
  parseJson(equals, `--filter ${text.slice(0, i)}`);
  return { path: text.slice(0, i), equals };
}

function readFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** A Pipeline, or a SubmitRunRequest (its pipeline, name and run timeout are taken), in protobuf JSON, as `submit` reads it. */
function readPipeline(text: string): { pipeline: Pipeline; name: string; runTimeout?: Duration } {
  const json = parseJson(text, "the input") as JsonValue;
  try {
    if (json && typeof json === "object" && !Array.isArray(json) && "pipeline" in json) {
      const r = fromJson(SubmitRunRequestSchema, json);
      return { pipeline: r.pipeline!, name: r.name, runTimeout: r.runTimeout };
    }
    return { pipeline: fromJson(PipelineSchema, json), name: "" };
  } catch (err) {
    throw new CliError(`error: the input is not a Pipeline or SubmitRunRequest in protobuf JSON: ${(err as Error).message}`, EXIT.usage);
  }
}

function withEvents(opts: ConnectionOptions, body: (events: Events) => Promise<void>): Promise<void> {
  return withConnection(opts, (address, options) => createClient(EventService, address, options), body);
}
