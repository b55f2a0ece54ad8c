// Decoding a big message without holding the event loop: protobuf-es decodes
// in one synchronous call (a 3 MB SubmitRun of 100,000 branches takes 100-200
// ms, during which no other client is answered). This decodes the message's
// big parts one element at a time (each branch, each DAG node...) and yields
// to the event loop every few milliseconds; small parts are decoded in one
// call as usual. The result is the same message fromBinary gives.

import { readValue, readVarint } from "./wire-read.js";
import { fromBinary, ScalarType, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/** Messages this small are decoded in one call (well under a millisecond). */
const WHOLE_BYTES = 64 * 1024;

interface Slicing {
  sliceMs: number;
  started: number;
  recursionLimit: number;
  wholeBytes: number;
}

/**
 * `fromBinary(schema, bytes)`, yielding to the event loop at least every
 * `sliceMs` of work. Messages of at most `wholeBytes` are decoded in one call.
 */
export async function decodeInSlices<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
  options: { sliceMs?: number; recursionLimit: number; wholeBytes?: number },
): Promise<MessageShape<Desc>> {
  const slicing: Slicing = {
    sliceMs: options.sliceMs ?? 10,
    started: performance.now(),
    recursionLimit: options.recursionLimit,
    wholeBytes: options.wholeBytes ?? WHOLE_BYTES,
  };
  return (await decode(schema, bytes, slicing, 0)) as MessageShape<Desc>;
}

async function pause(s: Slicing): Promise<void> {
  if (performance.now() - s.started < s.sliceMs) return;
  await new Promise((r) => setImmediate(r));
  s.started = performance.now();
}

type Message = Record<string, unknown>;

async function decode(desc: DescMessage, bytes: Uint8Array, s: Slicing, depth: number): Promise<Message> {
  const whole = () => fromBinary(desc, bytes, { recursionLimit: Math.max(1, s.recursionLimit - depth) }) as unknown as Message;
  if (bytes.length <= s.wholeBytes || desc.fields.some((f) => f.fieldKind === "map" && f.mapKey !== ScalarType.STRING) || mixedOneof(desc)) return whole();
  // Message fields are decoded one element at a time; everything else, in one call.
  const byNumber = new Map(desc.fields.map((f) => [f.number, f]));
  const rest: Uint8Array[] = [];
  const lists = new Map<DescField, unknown[]>();
  const maps = new Map<DescField, Record<string, unknown>>();
  const singles = new Map<DescField, Message>();
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    const [tag, afterTag] = varint(bytes, pos);
    const wireType = tag % 8;
    const field = byNumber.get(Math.floor(tag / 8));
    if (wireType !== 2) {
      pos = skip(bytes, afterTag, wireType);
      rest.push(bytes.subarray(start, pos));
      continue;
    }
    const [len, contentStart] = varint(bytes, afterTag);
    pos = contentStart + len;
    if (pos > bytes.length) return whole(); // malformed: let fromBinary say how
    const content = bytes.subarray(contentStart, pos);
    if (
      !field ||
      !(
        field.fieldKind === "message" ||
        (field.fieldKind === "list" && field.listKind === "message") ||
        (field.fieldKind === "map" && field.mapKind === "message")
      )
    ) {
      rest.push(bytes.subarray(start, pos));
      continue;
    }
    if (depth + 1 > s.recursionLimit) return whole(); // let fromBinary refuse it
    if (field.fieldKind === "map") {
      const [key, value] = mapEntry(content);
      let map = maps.get(field);
      if (!map) maps.set(field, (map = {}));
      map[key] = await decode(field.message!, value, s, depth + 1);
    } else if (field.fieldKind === "list") {
      let list = lists.get(field);
      if (!list) lists.set(field, (list = []));
      list.push(await decode(field.message!, content, s, depth + 1));
    } else {
      singles.set(field, await decode(field.message!, content, s, depth + 1));
    }
    await pause(s);
  }
  const message = fromBinary(desc, concat(rest), { recursionLimit: Math.max(1, s.recursionLimit - depth) }) as unknown as Message;
  for (const [f, items] of lists) message[f.localName] = items;
  for (const [f, entries] of maps) message[f.localName] = entries;
  for (const [f, value] of singles) {
    if (f.oneof) message[f.oneof.localName] = { case: f.localName, value };
    else message[f.localName] = value;
  }
  return message;
}

/**
 * Whether a oneof of the message has both message and other members (Wait.condition: a
 * duration or a name). The last member on the wire wins; taken apart, the message members
 * would be set after the others whatever their order, so such a message is decoded whole
 * (it is small: only its message members could make it big, and they are few).
 */
function mixedOneof(desc: DescMessage): boolean {
  return desc.oneofs.some((o) => o.fields.some((f) => f.fieldKind === "message") && o.fields.some((f) => f.fieldKind !== "message"));
}

/** A varint, or Infinity when malformed (the caller then lets fromBinary say what is wrong). */
function varint(bytes: Uint8Array, pos: number): [number, number] {
  return readVarint(bytes, pos) ?? [Infinity, bytes.length];
}

/** Where a field's value that is not length-delimited ends (the message's end for groups and unknown types). */
function skip(bytes: Uint8Array, pos: number, wireType: number): number {
  return readValue(bytes, pos, wireType)?.end ?? bytes.length;
}

const utf8 = new TextDecoder();

/** A string-keyed map entry: its key, and its value's bytes. */
function mapEntry(entry: Uint8Array): [string, Uint8Array] {
  let key = "";
  let value: Uint8Array = new Uint8Array();
  let pos = 0;
  while (pos < entry.length) {
    const [tag, afterTag] = varint(entry, pos);
    if (tag % 8 !== 2) {
      pos = skip(entry, afterTag, tag % 8);
      continue;
    }
    const [len, start] = varint(entry, afterTag);
    pos = start + len;
    if (Math.floor(tag / 8) === 1) key = utf8.decode(entry.subarray(start, pos));
    else if (Math.floor(tag / 8) === 2) value = entry.subarray(start, pos);
  }
  return [key, value];
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
