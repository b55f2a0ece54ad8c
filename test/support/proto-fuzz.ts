// Random protobuf wire bytes led by a message schema, for the adversarial
// suite: well-formed messages of any shape the schema allows (strings with
// NUL and odd Unicode, huge and negative numbers, empty and long repeated
// fields, messages nested thousands deep along a random path), and the same
// bytes truncated, flipped, or with fields of the wrong wire type. Made from a
// seed (fast-check draws the seeds), so a failing case replays exactly.

import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { mulberry32 } from "./fault-harness.js";

export interface FuzzShape {
  /** Deepest nesting to try (a random path goes that deep; elsewhere it stays shallow). */
  maxDepth: number;
  /** Most elements of a repeated field. */
  maxRepeat: number;
}

type Rng = () => number;

const STRINGS = [
  "",
  "x",
  "multiply",
  "default",
  "a\u0000b",
  "\u0000",
  "é\u{1F600}",
  "steps[0]",
  "00000000-0000-0000-0000-000000000000",
  "-1",
  " ",
  "\uFFFD",
  "a".repeat(300),
];

class Writer {
  private parts: Uint8Array[] = [];
  private size = 0;
  raw(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }
  varint(n: number): void {
    const out: number[] = [];
    let v = Math.max(0, Math.floor(n));
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.raw(Uint8Array.from(out));
  }
  tag(no: number, wireType: number): void {
    this.varint(no * 8 + wireType);
  }
  ld(no: number, body: Uint8Array): void {
    this.tag(no, 2);
    this.varint(body.length);
    this.raw(body);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function pick<T>(rng: Rng, list: readonly T[]): T {
  return list[Math.floor(rng() * list.length)];
}

function randomString(rng: Rng): string {
  if (rng() < 0.7) return pick(rng, STRINGS);
  const n = Math.floor(rng() * 20);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCodePoint(rng() < 0.8 ? 32 + Math.floor(rng() * 95) : Math.floor(rng() * 0xd7ff));
  return s;
}

function scalar(w: Writer, no: number, type: ScalarType, rng: Rng): void {
  switch (type) {
    case ScalarType.STRING:
      w.ld(no, new TextEncoder().encode(randomString(rng)));
      return;
    case ScalarType.BYTES:
      w.ld(
        no,
        Uint8Array.from({ length: Math.floor(rng() * 16) }, () => Math.floor(rng() * 256)),
      );
      return;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      w.tag(no, 1);
      w.raw(Uint8Array.from({ length: 8 }, () => Math.floor(rng() * 256)));
      return;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      w.tag(no, 5);
      w.raw(Uint8Array.from({ length: 4 }, () => Math.floor(rng() * 256)));
      return;
    default: {
      // Varints: small, huge (2^63), and "negative" (ten bytes).
      w.tag(no, 0);
      const r = rng();
      if (r < 0.6) w.varint(Math.floor(rng() * 10));
      else if (r < 0.8) w.varint(Math.floor(rng() * 2 ** 40));
      else w.raw(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    }
  }
}

/** A message of type `desc`; `deep` is how many levels the one deep path still has to go. */
function message(desc: DescMessage, rng: Rng, shape: FuzzShape, depth: number, deep: number): Uint8Array {
  const w = new Writer();
  const messageFields = desc.fields.filter(
    (f) => f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") || (f.fieldKind === "map" && f.mapKind === "message"),
  );
  // The deep path goes on through one message field (when the type has one).
  const deepField = deep > 0 && messageFields.length ? pick(rng, messageFields) : undefined;
  for (const f of desc.fields) {
    if (f === deepField) {
      field(w, f, rng, shape, depth, deep - 1, true);
      continue;
    }
    if (rng() < 0.5) continue;
    if (depth > 6 && (f.fieldKind === "message" || f.fieldKind === "list" || f.fieldKind === "map")) continue;
    field(w, f, rng, shape, depth, 0, false);
  }
  if (rng() < 0.05) scalar(w, 1000 + Math.floor(rng() * 1000), ScalarType.STRING, rng); // an unknown field
  return w.finish();
}

function field(w: Writer, f: DescField, rng: Rng, shape: FuzzShape, depth: number, deep: number, once: boolean): void {
  const count = () => (once ? 1 : Math.floor(rng() * (rng() < 0.9 ? 3 : shape.maxRepeat + 1)));
  switch (f.fieldKind) {
    case "scalar":
      scalar(w, f.number, f.scalar, rng);
      return;
    case "enum":
      w.tag(f.number, 0);
      w.varint(rng() < 0.8 ? Math.floor(rng() * (f.enum.values.length + 1)) : 40_000);
      return;
    case "message":
      w.ld(f.number, message(f.message, rng, shape, depth + 1, deep));
      return;
    case "list":
      for (let i = count(); i > 0; i--) {
        if (f.listKind === "message") w.ld(f.number, message(f.message, rng, shape, depth + 1, deep));
        else if (f.listKind === "enum") {
          w.tag(f.number, 0);
          w.varint(Math.floor(rng() * 5));
        } else scalar(w, f.number, f.scalar, rng);
      }
      return;
    case "map":
      for (let i = count(); i > 0; i--) {
        const entry = new Writer();
        scalar(entry, 1, f.mapKey, rng);
        if (f.mapKind === "message") entry.ld(2, message(f.message, rng, shape, depth + 1, deep));
        else if (f.mapKind === "enum") {
          entry.tag(2, 0);
          entry.varint(1);
        } else scalar(entry, 2, f.scalar, rng);
        w.ld(f.number, entry.finish());
      }
      return;
  }
}

export type FuzzKind = "random" | "deep" | "truncated" | "flipped" | "garbage";

/** The bytes of one fuzz case of `kind` for messages of type `desc`, from `seed`. */
export function fuzzBytes(desc: DescMessage, kind: FuzzKind, seed: number, shape: FuzzShape): Uint8Array {
  const rng = mulberry32(seed);
  if (kind === "garbage") return Uint8Array.from({ length: Math.floor(rng() * 64) }, () => Math.floor(rng() * 256));
  const deep = kind === "deep" ? shape.maxDepth : Math.floor(rng() * 4);
  const bytes = message(desc, rng, shape, 0, deep);
  if (kind === "truncated" && bytes.length > 1) return bytes.subarray(0, Math.floor(rng() * bytes.length));
  if (kind === "flipped" && bytes.length > 0) {
    const out = Uint8Array.from(bytes);
    for (let i = 0; i < 1 + Math.floor(rng() * 4); i++) out[Math.floor(rng() * out.length)] ^= 1 << Math.floor(rng() * 8);
    return out;
  }
  return bytes;
}
