// A look at protobuf wire bytes before they are decoded: a loop over tags
// with an explicit stack (no recursion, however deep the message), led by the
// schema so that it knows which fields hold messages and which hold strings.
// It allocates nothing per field. The server uses it to refuse what it must
// never decode: 7 million branches decode into ~5 GB, 10,000 levels of
// nesting overflow a recursive decoder. Scanning a 3 MB, 100,000-branch
// pipeline takes a few milliseconds; decoding it takes a hundred.

import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { firstField, readTag, readValue } from "./wire-read.js";

/** How the scan sees one field. */
export interface FieldPlan {
  no: number;
  /** The field's name in the .proto file (used in paths). */
  name: string;
  kind: "message" | "string" | "other";
  /** For message fields (and map fields: their entry). */
  message?: MessagePlan;
  repeated: boolean;
  map: boolean;
}

/** How the scan sees one message type. */
export interface MessagePlan {
  typeName: string;
  /** By field number (sparse). */
  fields: (FieldPlan | undefined)[];
  /** Hooks are called for this type (see ScanHooks.watch). */
  watched: boolean;
}

export interface ScanHooks {
  /** Type names whose messages `enter` and `exit` are called for. */
  watch: ReadonlySet<string>;
  /**
   * A watched message starts: its field's tag is at `offset` (0 for the root),
   * its content is `bytes[start, end)`; `level` is its place on the stack (root: 0).
   */
  enter(scan: WireScan, plan: MessagePlan, offset: number, level: number, start: number, end: number): void;
  exit(scan: WireScan, plan: MessagePlan, level: number): void;
  /** A string field's UTF-8 bytes are `bytes[start, end)`. */
  string(scan: WireScan, field: FieldPlan, start: number, end: number): void;
}

/** The message holds more messages than the scan was allowed (see WireScan's `maxMessages`). */
export class TooManyMessages extends Error {
  constructor(readonly limit: number) {
    super(`the message holds more than ${limit} messages`);
  }
}

/** Why a message is malformed (the offset is where the scan stopped). */
export class MalformedMessage extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

const plans = new Map<string, Map<string, MessagePlan>>();

/** The scan plan of a message type, built once per set of watched types. */
export function planOf(desc: DescMessage, watch: ReadonlySet<string>): MessagePlan {
  const key = [...watch].sort().join(",");
  let cache = plans.get(key);
  if (!cache) plans.set(key, (cache = new Map()));
  return build(desc, watch, cache);
}

function build(desc: DescMessage, watch: ReadonlySet<string>, cache: Map<string, MessagePlan>): MessagePlan {
  const known = cache.get(desc.typeName);
  if (known) return known;
  const plan: MessagePlan = { typeName: desc.typeName, fields: [], watched: watch.has(desc.typeName) };
  cache.set(desc.typeName, plan); // before the fields: message types refer to themselves
  for (const f of desc.fields) plan.fields[f.number] = fieldPlan(f, desc, watch, cache);
  return plan;
}

function fieldPlan(f: DescField, parent: DescMessage, watch: ReadonlySet<string>, cache: Map<string, MessagePlan>): FieldPlan {
  const base = { no: f.number, name: f.name, repeated: f.fieldKind === "list" || f.fieldKind === "map", map: f.fieldKind === "map" };
  switch (f.fieldKind) {
    case "message":
      return { ...base, kind: "message", message: build(f.message, watch, cache) };
    case "list":
      if (f.listKind === "message") return { ...base, kind: "message", message: build(f.message, watch, cache) };
      return { ...base, kind: f.listKind === "scalar" && f.scalar === ScalarType.STRING ? "string" : "other" };
    case "scalar":
      return { ...base, kind: f.scalar === ScalarType.STRING ? "string" : "other" };
    case "enum":
      return { ...base, kind: "other" };
    case "map": {
      // A map is a repeated entry message: key = field 1, value = field 2.
      const entryName = `${parent.typeName}.${f.name}#entry`;
      let entry = cache.get(entryName);
      if (!entry) {
        entry = { typeName: entryName, fields: [], watched: false };
        cache.set(entryName, entry);
        entry.fields[1] = { no: 1, name: "key", kind: f.mapKey === ScalarType.STRING ? "string" : "other", repeated: false, map: false };
        entry.fields[2] =
          f.mapKind === "message"
            ? { no: 2, name: "value", kind: "message", message: build(f.message, watch, cache), repeated: false, map: false }
            : { no: 2, name: "value", kind: f.mapKind === "scalar" && f.scalar === ScalarType.STRING ? "string" : "other", repeated: false, map: false };
      }
      return { ...base, kind: "message", message: entry };
    }
  }
}

/**
 * One scan of one message. `run()` walks it to the end (or until `stop()`),
 * calling the hooks; it throws MalformedMessage for bytes that are not a
 * message of the type, or nested deeper than `maxDepth` messages.
 */
export class WireScan {
  private pos = 0;
  private top = -1;
  private readonly ends: number[] = [];
  private readonly stack: MessagePlan[] = [];
  private stopped = false;
  /** Messages seen so far (the root included): what decoding would allocate, roughly one object each. */
  messages = 0;

  constructor(
    readonly bytes: Uint8Array,
    private readonly root: MessagePlan,
    private readonly hooks: ScanHooks,
    private readonly maxDepth: number,
    /** Stops with TooManyMessages past this many messages (what decoding would allocate). */
    private readonly maxMessages = Infinity,
  ) {}

  /** Ends the scan after the current callback. */
  stop(): void {
    this.stopped = true;
  }

  /** Skips the rest of the message at stack `level` (its exit hooks, and those above it, still run). */
  skipRest(level: number): void {
    if (level > this.top) return;
    this.pos = this.ends[level];
    while (this.top > level) this.pop();
  }

  /** Messages open around the current position (the root is 1). */
  get depth(): number {
    return this.top + 1;
  }

  run(): void {
    const bytes = this.bytes;
    const hooks = this.hooks;
    this.push(this.root, bytes.length, 0);
    while (!this.stopped) {
      while (this.top >= 0 && this.pos >= this.ends[this.top]) {
        if (this.pos > this.ends[this.top]) throw new MalformedMessage("a field runs past the end of its message", this.pos);
        this.pop();
        if (this.stopped) return;
      }
      if (this.top < 0) return;
      const tagAt = this.pos;
      const tag = this.varint();
      const no = Math.floor(tag / 8);
      const wireType = tag % 8;
      if (no === 0) throw new MalformedMessage("field number 0", tagAt);
      switch (wireType) {
        case 0:
          this.varint();
          break;
        case 1:
          this.pos += 8;
          break;
        case 5:
          this.pos += 4;
          break;
        case 2: {
          const len = this.varint();
          const start = this.pos;
          const end = start + len;
          if (end > this.ends[this.top]) throw new MalformedMessage(`a length of ${len} bytes runs past the end of its message`, tagAt);
          const field = this.stack[this.top].fields[no];
          if (field?.kind === "message") {
            this.push(field.message!, end, tagAt);
          } else {
            if (field?.kind === "string") hooks.string(this, field, start, end);
            this.pos = end;
          }
          break;
        }
        default:
          // Groups (3, 4) are not used by this protocol, and 6, 7 do not exist.
          throw new MalformedMessage(`wire type ${wireType} is not used by this protocol`, tagAt);
      }
    }
  }

  private push(plan: MessagePlan, end: number, tagAt: number): void {
    if (this.top + 1 >= this.maxDepth) throw new MalformedMessage(`messages nest more than ${this.maxDepth} levels deep`, tagAt);
    if (++this.messages > this.maxMessages) throw new TooManyMessages(this.maxMessages);
    this.top++;
    this.ends[this.top] = end;
    this.stack[this.top] = plan;
    if (plan.watched) this.hooks.enter(this, plan, tagAt, this.top, this.pos, end);
  }

  private pop(): void {
    const plan = this.stack[this.top];
    const level = this.top;
    this.top--;
    if (plan.watched) this.hooks.exit(this, plan, level);
  }

  private varint(): number {
    const bytes = this.bytes;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= bytes.length) throw new MalformedMessage("the message ends inside a number", this.pos);
      const b = bytes[this.pos++];
      // Numbers past 2^53 lose precision here; they only ever matter as lengths, and those are checked against the end.
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new MalformedMessage("a number longer than 10 bytes", this.pos);
  }
}

/**
 * The field path (`pipeline.steps[3].group.branches[0].steps[0].task.task`)
 * of the innermost field holding byte `offset`: a second walk from the root,
 * done only to name a problem. Map entries are named by their key.
 */
export function pathAt(bytes: Uint8Array, root: MessagePlan, offset: number): string {
  const parts: string[] = [];
  let plan: MessagePlan | undefined = root;
  let start = 0;
  let end = bytes.length;
  descend: while (plan) {
    const seen = new Map<number, number>();
    let pos = start;
    while (pos < end) {
      const tag = readTag(bytes, pos);
      const value = tag && readValue(bytes, tag[2], tag[1]);
      if (!tag || !value) break descend;
      const [no, wireType] = tag;
      const field: FieldPlan | undefined = plan.fields[no];
      const index = seen.get(no) ?? 0;
      seen.set(no, index + 1);
      if (offset < pos || offset >= value.end) {
        pos = value.end;
        continue;
      }
      const name = field?.name ?? `#${no}`;
      if (wireType !== 2) {
        parts.push(name);
        break descend;
      }
      if (field?.map) parts.push(`${name}[${JSON.stringify(mapKey(bytes.subarray(value.start, value.end)))}]`);
      else parts.push(field?.repeated ? `${name}[${index}]` : name);
      if (field?.kind !== "message") break descend;
      if (field.map) {
        // Into the entry's value (field 2), when it is a message.
        plan = field.message!.fields[2]?.message;
        const inner = plan && fieldRange(bytes, value.start, value.end, 2);
        if (!inner || offset < inner.start) break descend;
        ({ start, end } = inner);
      } else {
        plan = field.message;
        ({ start, end } = value);
      }
      continue descend;
    }
    break;
  }
  return parts.join(".");
}

const utf8 = new TextDecoder();

/** The string key (field 1) of a map entry, for naming it (cut to 60 bytes). */
function mapKey(entry: Uint8Array): string {
  const key = firstField(entry, 1);
  return key ? utf8.decode(key.subarray(0, 60)).replace(/\0/g, "\\u0000") : "";
}

/** Where the content of length-delimited field `no` of the message bytes[start, end) lies. */
function fieldRange(bytes: Uint8Array, start: number, end: number, no: number): { start: number; end: number } | undefined {
  const message = bytes.subarray(start, end);
  const content = firstField(message, no);
  if (!content) return undefined;
  const from = start + (content.byteOffset - message.byteOffset);
  return { start: from, end: from + content.length };
}
