// What a request may hold, checked on its bytes before anything decodes it
// (wire-scan.ts walks them without recursion and without allocating per
// field). Decoding is where memory goes: 7 million one-task branches in a
// 64 MiB SubmitRun decoded into ~5 GB and killed the server; 10,000 levels of
// nesting overflow a recursive decoder. So the limits that bound memory and
// depth are enforced here, and everything after decoding is bounded by them:
//
// - tasks per run (RESOURCE_EXHAUSTED), messages per request and messages
//   being decoded at once across requests (RESOURCE_EXHAUSTED: what decoding
//   allocates, roughly one object per message);
// - groups nested in groups, values nested in values, messages nested in
//   messages (INVALID_ARGUMENT);
// - no string may hold U+0000: PostgreSQL cannot store it in text, and one
//   such name used to fail every other request of the same group commit
//   (INVALID_ARGUMENT).
//
// A worker's results are checked one by one: a result that breaks a rule
// becomes a pipewright.InvalidResult failure of its attempt (the other
// results of the message go through as sent), so a bad result ends its task
// instead of being retried forever.

import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { GroupSchema, TaskCallSchema } from "@pipewright/protocol";
import { BatchSubmitRunsRequestSchema, SubmitRunRequestSchema } from "@pipewright/protocol";
import { TaskErrorSchema, ValueSchema } from "@pipewright/protocol";
import { ConnectRequestSchema, TaskKeySchema, TaskResultSchema } from "@pipewright/protocol";
import type { Inspector } from "@pipewright/protocol";
import { MAX_GROUP_NESTING, MAX_MESSAGE_DEPTH, MAX_VALUE_DEPTH } from "@pipewright/protocol";
import { MalformedMessage, TooManyMessages, WireScan, pathAt, planOf, type FieldPlan, type MessagePlan, type ScanHooks } from "@pipewright/protocol";
import { firstField } from "@pipewright/protocol";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import type { Violation } from "@pipewright/protocol";
import { serverError } from "../core/values.js";

export interface AdmissionConfig {
  maxTasksPerRun: number;
  /** Messages one request may hold (decoding allocates about one object each). */
  maxMessagesPerRequest: number;
  /** Messages of requests being decoded or handled at once, all requests together. */
  maxMessagesInFlight: number;
}

const WATCHED = new Set([
  SubmitRunRequestSchema.typeName,
  TaskResultSchema.typeName,
  TaskCallSchema.typeName,
  GroupSchema.typeName,
  ValueSchema.typeName,
  TaskErrorSchema.typeName,
]);

/** Violations kept per request; the rest are counted (the client gets the first ones). */
const MAX_FOUND = 1000;

interface Found {
  offset: number;
  code: "INVALID_ARGUMENT" | "RESOURCE_EXHAUSTED";
  description: string;
  /** The unit (submit request or worker result) it is in; -1 outside any. */
  unit: number;
}

/** The rules, applied as the scan walks a message. */
class Rules implements ScanHooks {
  readonly watch = WATCHED;
  readonly found: Found[] = [];
  more = 0;
  /** Units (one SubmitRunRequest, one TaskResult) seen so far, and where each lies. */
  units: { start: number; end: number; bad: boolean }[] = [];
  private unitLevel = -1;
  private unitOffset = 0;
  private tasks = 0;
  private groups = 0;
  private values = 0;

  constructor(
    private readonly maxTasks: number,
    /** A limit reached in one unit skips the rest of that unit (worker results) instead of ending the scan (requests). */
    private readonly perUnit: boolean,
    private readonly unitType: string,
  ) {}

  private report(scan: WireScan, offset: number, code: Found["code"], description: string, skipLevel: number): void {
    const unit = this.unitLevel >= 0 ? this.units.length - 1 : -1;
    if (unit >= 0) this.units[unit].bad = true;
    if (this.found.length < MAX_FOUND) this.found.push({ offset, code, description, unit });
    else this.more++;
    if (code === "RESOURCE_EXHAUSTED") {
      if (this.perUnit && this.unitLevel >= 0) scan.skipRest(this.unitLevel);
      else scan.stop();
    } else if (skipLevel >= 0) {
      scan.skipRest(skipLevel); // nothing more inside is worth looking at
    }
  }

  enter(scan: WireScan, plan: MessagePlan, offset: number, level: number, start: number, end: number): void {
    switch (plan.typeName) {
      case this.unitType:
        if (this.unitLevel < 0) {
          this.unitLevel = level;
          this.unitOffset = offset;
          this.units.push({ start, end, bad: false });
          this.tasks = 0;
        }
        return;
      case TaskCallSchema.typeName:
        if (++this.tasks > this.maxTasks) {
          this.report(
            scan,
            this.unitLevel >= 0 ? this.unitOffset : offset,
            "RESOURCE_EXHAUSTED",
            `the pipeline holds more than ${this.maxTasks} tasks, over this server's limit of ${this.maxTasks} per run (--max-tasks-per-run)`,
            level,
          );
        }
        return;
      case GroupSchema.typeName:
        if (++this.groups > MAX_GROUP_NESTING) {
          this.report(
            scan,
            offset,
            "INVALID_ARGUMENT",
            `groups nest at most ${MAX_GROUP_NESTING} levels deep; use a task that returns a child pipeline for deeper structure`,
            level,
          );
        }
        return;
      case ValueSchema.typeName:
      case TaskErrorSchema.typeName:
        if (++this.values > MAX_VALUE_DEPTH) {
          this.report(scan, offset, "INVALID_ARGUMENT", `values (lists, maps, errors) nest at most ${MAX_VALUE_DEPTH} levels deep`, level);
        }
        return;
    }
  }

  exit(_scan: WireScan, plan: MessagePlan, level: number): void {
    switch (plan.typeName) {
      case this.unitType:
        if (level === this.unitLevel) this.unitLevel = -1;
        return;
      case GroupSchema.typeName:
        this.groups--;
        return;
      case ValueSchema.typeName:
      case TaskErrorSchema.typeName:
        this.values--;
        return;
    }
  }

  string(scan: WireScan, _field: FieldPlan, start: number, end: number): void {
    const bytes = scan.bytes;
    for (let i = start; i < end; i++) {
      if (bytes[i] === 0) {
        this.report(scan, start, "INVALID_ARGUMENT", "must not contain the character U+0000 (NUL): PostgreSQL cannot store it", -1);
        return;
      }
    }
  }
}

/** Scans `bytes` as a `schema` message with the rules; malformed bytes are reported like a violation. */
function scan(schema: DescMessage, bytes: Uint8Array, rules: Rules, maxMessages: number): { messages: number; malformed?: Found } {
  const plan = planOf(schema, WATCHED);
  const walk = new WireScan(bytes, plan, rules, MAX_MESSAGE_DEPTH, maxMessages);
  try {
    walk.run();
  } catch (err) {
    if (err instanceof TooManyMessages) {
      return {
        messages: walk.messages,
        malformed: {
          offset: 0,
          code: "RESOURCE_EXHAUSTED",
          description: `the request holds more than ${maxMessages} messages, over this server's limit per request (--max-request-messages)`,
          unit: -1,
        },
      };
    }
    if (err instanceof MalformedMessage) {
      return {
        messages: walk.messages,
        malformed: { offset: err.offset, code: "INVALID_ARGUMENT", description: `malformed: ${err.message}`, unit: rules.units.length - 1 },
      };
    }
    throw err;
  }
  return { messages: walk.messages };
}

function violationsOf(schema: DescMessage, bytes: Uint8Array, found: Found[]): Violation[] {
  const plan = planOf(schema, WATCHED);
  return found.map((f) => ({ field: pathAt(bytes, plan, f.offset) || "(request)", description: f.description }));
}

/** The error a request with these findings gets: RESOURCE_EXHAUSTED when a limit was passed, else INVALID_ARGUMENT listing them. */
function refusal(schema: DescMessage, bytes: Uint8Array, found: Found[], more: number): PipewrightError {
  const violations = violationsOf(schema, bytes, found);
  const limit = found.findIndex((f) => f.code === "RESOURCE_EXHAUSTED");
  if (limit >= 0) {
    const v = violations[limit];
    return new PipewrightError("RESOURCE_EXHAUSTED", v.field === "(request)" ? v.description : `${v.field}: ${v.description}`);
  }
  for (let i = 0; i < more; i++) violations.push({ field: "(request)", description: "one more violation, not looked at" });
  return invalidRequest(violations);
}

/** Inspectors for the server's methods (see grpc-bridge's `Inspector`). */
export class Admission {
  /** Messages of admitted requests not released yet. */
  private inFlight = 0;
  /** Requests refused because too much was being admitted at once (for monitoring). */
  busyRefusals = 0;

  constructor(private readonly config: AdmissionConfig) {}

  /** For requests that hold pipelines (SubmitRun, BatchSubmitRuns): every rule, and the shared budget. */
  submit(schema: typeof SubmitRunRequestSchema | typeof BatchSubmitRunsRequestSchema): Inspector {
    return (bytes) => {
      const rules = new Rules(this.config.maxTasksPerRun, false, SubmitRunRequestSchema.typeName);
      const { messages, malformed } = scan(schema, bytes, rules, this.config.maxMessagesPerRequest);
      if (malformed) rules.found.unshift(malformed);
      if (rules.found.length) throw refusal(schema, bytes, rules.found, rules.more);
      // Decoded in one call, 100,000 branches (3 MB) hold the event loop 100-200 ms.
      return { release: this.reserve(messages), inSlices: bytes.length > 256 * 1024 };
    };
  }

  /** For every other request: well-formed, depths, no NUL, bounded size. */
  plain(schema: DescMessage): Inspector {
    return (bytes) => {
      const rules = new Rules(this.config.maxTasksPerRun, false, "");
      const { malformed } = scan(schema, bytes, rules, this.config.maxMessagesPerRequest);
      if (malformed) rules.found.unshift(malformed);
      if (rules.found.length) throw refusal(schema, bytes, rules.found, rules.more);
    };
  }

  /**
   * For the worker stream: a result that breaks a rule is replaced by a
   * pipewright.InvalidResult failure of its attempt; a message that breaks a
   * rule outside any result (a hello, a heartbeat) is refused, which ends the
   * stream with that status.
   */
  workerMessage(): Inspector {
    return (bytes) => {
      // Tasks of a returned child pipeline count toward its run's total, which the run
      // machine checks (pipewright.LimitExceeded); memory is bounded by the message limit.
      const rules = new Rules(Infinity, true, TaskResultSchema.typeName);
      const { malformed } = scan(ConnectRequestSchema, bytes, rules, this.config.maxMessagesPerRequest);
      if (malformed) rules.found.unshift(malformed);
      if (rules.found.length === 0) return;
      if (malformed || rules.found.some((f) => f.unit < 0)) throw refusal(ConnectRequestSchema, bytes, rules.found, rules.more);
      return { bytes: replaceBadResults(bytes, rules) };
    };
  }

  /** An inspector for every method of a service: `submit` for the pipeline-carrying requests, `workerMessage` for the worker stream, `plain` for the rest. */
  inspectorsFor<S extends DescService>(service: S): Partial<Record<keyof S["method"], Inspector>> {
    const out: Record<string, Inspector> = {};
    for (const m of service.methods) {
      if (m.input.typeName === SubmitRunRequestSchema.typeName) out[m.localName] = this.submit(SubmitRunRequestSchema);
      else if (m.input.typeName === BatchSubmitRunsRequestSchema.typeName) out[m.localName] = this.submit(BatchSubmitRunsRequestSchema);
      else if (m.input.typeName === ConnectRequestSchema.typeName) out[m.localName] = this.workerMessage();
      else out[m.localName] = this.plain(m.input);
    }
    return out as Partial<Record<keyof S["method"], Inspector>>;
  }

  /** Takes `messages` from the shared budget; the function gives them back. */
  private reserve(messages: number): () => void {
    // One request alone always fits (it is within the per-request limit); a second
    // one waits for room: it is refused, and may come back in a moment.
    if (this.inFlight > 0 && this.inFlight + messages > this.config.maxMessagesInFlight) {
      this.busyRefusals++;
      throw new PipewrightError(
        "RESOURCE_EXHAUSTED",
        `the server is admitting ${this.inFlight} messages of other requests; this one (${messages}) would pass its limit of ${this.config.maxMessagesInFlight} at once (--max-messages-in-flight): retry shortly`,
      );
    }
    this.inFlight += messages;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= messages;
    };
  }
}

/** The message with each bad result replaced by an InvalidResult failure of the same attempt. */
function replaceBadResults(bytes: Uint8Array, rules: Rules): Uint8Array {
  const violations = violationsOf(ConnectRequestSchema, bytes, rules.found);
  const byUnit = new Map<number, string[]>();
  rules.found.forEach((f, i) => {
    const list = byUnit.get(f.unit) ?? [];
    list.push(`${violations[i].field}: ${violations[i].description}`);
    byUnit.set(f.unit, list);
  });
  const results = new BinaryWriter();
  rules.units.forEach((u, i) => {
    const unit = bytes.subarray(u.start, u.end);
    results.tag(1, WireType.LengthDelimited).bytes(u.bad ? invalidResult(unit, byUnit.get(i) ?? []) : unit);
  });
  return new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(results.finish()).finish();
}

function invalidResult(unit: Uint8Array, problems: string[]): Uint8Array {
  let key;
  try {
    // The key alone (field 1), decoded on its own: the rest of the result is what is wrong.
    const keyBytes = firstField(unit, 1);
    key = keyBytes ? fromBinary(TaskKeySchema, keyBytes) : undefined;
  } catch {
    key = undefined; // a result for no attempt: it will be dropped as stale
  }
  const message = `the worker's result was refused: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}`;
  const error = serverError("InvalidResult", message);
  return toBinary(TaskResultSchema, create(TaskResultSchema, { key, outcome: { case: "error", value: error } }));
}
