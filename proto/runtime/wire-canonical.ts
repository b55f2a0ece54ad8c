// The canonical form of a message's wire bytes, for comparing two requests by
// meaning: map entries sorted by key. Protobuf leaves map order to the encoder
// (another language, or the same one with keys inserted in another order,
// encodes the same map differently), so two submissions of one pipeline
// could differ in bytes. Reordering entries keeps every length, so the
// canonical form has exactly the input's size and is written in one pass.
// Other fields are kept as sent: every protobuf encoder writes fields in
// field-number order.

import type { MessagePlan } from "./wire-scan.js";
import { readVarint } from "./wire-read.js";

/** The canonical bytes of `bytes`, a message whose plan is `plan` (see planOf); the input itself when it has no map entry. */
export function canonicalBytes(plan: MessagePlan, bytes: Uint8Array): Uint8Array {
  if (!hasMaps(plan)) return bytes;
  const out = new Uint8Array(bytes.length);
  const end = canonical(plan, bytes, 0, bytes.length, out, 0);
  if (end !== bytes.length) throw new Error("canonical form lost bytes");
  return out;
}

const mapsInside = new WeakMap<MessagePlan, boolean>();

/** Whether messages of this plan can hold a map, at any depth. */
function hasMaps(plan: MessagePlan, seen = new Set<MessagePlan>()): boolean {
  const known = mapsInside.get(plan);
  if (known !== undefined) return known;
  if (seen.has(plan)) return false; // a cycle: the other paths decide
  seen.add(plan);
  let found = false;
  for (const f of plan.fields) if (f && (f.map || (f.kind === "message" && hasMaps(f.message!, seen)))) found = true;
  if (seen.size === 1 || found) mapsInside.set(plan, found);
  return found;
}

interface Entry {
  start: number;
  end: number;
  key: Uint8Array;
}

/** Writes the canonical form of bytes[start, end) into out at `at`; returns where it stopped. The input is trusted to be well-formed (it was scanned). */
function canonical(plan: MessagePlan, bytes: Uint8Array, start: number, end: number, out: Uint8Array, at: number): number {
  let pos = start;
  // Map fields: every entry is written where the field's first entry was, sorted by key.
  let maps: Map<number, Entry[]> | undefined;
  let mapsPlaced: Set<number> | undefined;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, afterTag] = varint(bytes, pos);
    const no = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType !== 2) {
      pos = wireType === 0 ? varint(bytes, afterTag)[1] : afterTag + (wireType === 1 ? 8 : 4);
      out.set(bytes.subarray(fieldStart, pos), at);
      at += pos - fieldStart;
      continue;
    }
    const [len, contentStart] = varint(bytes, afterTag);
    pos = contentStart + len;
    const field = plan.fields[no];
    if (field?.map) {
      if (!maps) {
        maps = collectMaps(plan, bytes, fieldStart, end);
        mapsPlaced = new Set();
      }
      if (mapsPlaced!.has(no)) continue;
      mapsPlaced!.add(no);
      const entries = maps.get(no)!;
      entries.sort((a, b) => compareBytes(a.key, b.key));
      for (const e of entries) at = copyMessageField(field.message!, bytes, e.start, e.end, out, at);
      continue;
    }
    if (field?.kind === "message" && hasMaps(field.message!)) {
      at = copyMessageField(field.message!, bytes, fieldStart, pos, out, at);
      continue;
    }
    out.set(bytes.subarray(fieldStart, pos), at);
    at += pos - fieldStart;
  }
  return at;
}

/** Copies one length-delimited field (tag, length, content) with its content made canonical. */
function copyMessageField(plan: MessagePlan, bytes: Uint8Array, fieldStart: number, fieldEnd: number, out: Uint8Array, at: number): number {
  const [, afterTag] = varint(bytes, fieldStart);
  const [, contentStart] = varint(bytes, afterTag);
  out.set(bytes.subarray(fieldStart, contentStart), at);
  return canonical(plan, bytes, contentStart, fieldEnd, out, at + (contentStart - fieldStart));
}

/** Every map entry of the message from `from` on, by field number. */
function collectMaps(plan: MessagePlan, bytes: Uint8Array, from: number, end: number): Map<number, Entry[]> {
  const maps = new Map<number, Entry[]>();
  let pos = from;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, afterTag] = varint(bytes, pos);
    const wireType = tag % 8;
    if (wireType !== 2) {
      pos = wireType === 0 ? varint(bytes, afterTag)[1] : afterTag + (wireType === 1 ? 8 : 4);
      continue;
    }
    const [len, contentStart] = varint(bytes, afterTag);
    pos = contentStart + len;
    const no = Math.floor(tag / 8);
    if (!plan.fields[no]?.map) continue;
    let list = maps.get(no);
    if (!list) maps.set(no, (list = []));
    list.push({ start: fieldStart, end: pos, key: entryKey(bytes, contentStart, pos) });
  }
  return maps;
}

/** The bytes of a map entry's key (field 1); empty when absent (the default key). */
function entryKey(bytes: Uint8Array, start: number, end: number): Uint8Array {
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = varint(bytes, pos);
    const wireType = tag % 8;
    if (wireType === 2) {
      const [len, contentStart] = varint(bytes, afterTag);
      if (Math.floor(tag / 8) === 1) return bytes.subarray(contentStart, contentStart + len);
      pos = contentStart + len;
    } else if (wireType === 0) {
      const [, next] = varint(bytes, afterTag);
      if (Math.floor(tag / 8) === 1) return bytes.subarray(afterTag, next); // a non-string key: its varint bytes order it well enough
      pos = next;
    } else {
      pos = afterTag + (wireType === 1 ? 8 : 4);
    }
  }
  return new Uint8Array();
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A varint of bytes that were scanned already (well-formed). */
function varint(bytes: Uint8Array, pos: number): [number, number] {
  return readVarint(bytes, pos)!;
}
