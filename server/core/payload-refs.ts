// Big payloads travel by reference inside the server. A queue row stores its
// assignment; when a group of 64 branches is given the same 8 MB argument,
// the 64 rows would hold 512 MB of copies. Instead, in the stored form of an
// assignment every payload of BLOB_THRESHOLD bytes or more is replaced by a
// reference (its sha256, encoding tagged with REF_PREFIX), and its bytes go to
// payload_blobs once per run. The dispatcher puts the bytes back before an
// assignment leaves for a worker: workers never see a reference.
//
// REF_PREFIX starts with U+0000, which no string from outside may hold (the
// admission refuses it), so a reference can never be forged by a client.

import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { PayloadSchema, ValueListSchema, ValueMapSchema, ValueSchema, type Payload, type Value } from "@pipewright/protocol";
import { valueStats } from "@pipewright/protocol";

/** Payloads this big or bigger are stored once per run and referred to. */
export const BLOB_THRESHOLD = 64 * 1024;
const REF_PREFIX = "\u0000pw-blob:";
const REF_BYTES = Buffer.from(REF_PREFIX, "utf8");

export interface BlobData {
  hash: Uint8Array;
  data: Uint8Array;
}

const hashes = new WeakMap<Payload, Uint8Array>();

/** The sha256 of a payload's bytes, computed once per payload object (a group shares one). */
function hashOf(p: Payload): Uint8Array {
  let h = hashes.get(p);
  if (!h) hashes.set(p, (h = createHash("sha256").update(p.data).digest()));
  return h;
}

const hex = (h: Uint8Array) => Buffer.from(h).toString("hex");

/**
 * The value with its big payloads replaced by references, added to `blobs`
 * (by hex hash). The value itself when nothing in it is that big. Errors are
 * left as they are: they are bounded to a few kilobytes.
 */
export function externalize(v: Value, blobs: Map<string, BlobData>): Value {
  if (valueStats(v).bytes < BLOB_THRESHOLD) return v;
  switch (v.kind.case) {
    case "payload": {
      const p = v.kind.value;
      if (p.data.length < BLOB_THRESHOLD) return v;
      const hash = hashOf(p);
      blobs.set(hex(hash), { hash, data: p.data });
      return create(ValueSchema, { kind: { case: "payload", value: create(PayloadSchema, { encoding: REF_PREFIX + p.encoding, data: hash }) } });
    }
    case "list":
      return create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items: v.kind.value.items.map((i) => externalize(i, blobs)) }) } });
    case "map":
      return create(ValueSchema, {
        kind: { case: "map", value: create(ValueMapSchema, { entries: mapValues(v.kind.value.entries, (e) => externalize(e, blobs)) }) },
      });
    default:
      return v;
  }
}

/** Whether stored assignment bytes may hold a reference (a cheap byte search; a false alarm only costs a walk). */
export function mayHoldRefs(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(REF_BYTES) >= 0;
}

/** The hashes (hex) of the references in a value. */
export function refsIn(v: Value | undefined, out: Map<string, Uint8Array>): void {
  if (!v) return;
  switch (v.kind.case) {
    case "payload":
      if (v.kind.value.encoding.startsWith(REF_PREFIX)) out.set(hex(v.kind.value.data), v.kind.value.data);
      return;
    case "list":
      for (const i of v.kind.value.items) refsIn(i, out);
      return;
    case "map":
      for (const e of Object.values(v.kind.value.entries)) refsIn(e, out);
      return;
  }
}

/** The value with its references replaced by the bytes in `blobs` (by hex hash); throws if one is missing. */
export function internalize(v: Value, blobs: Map<string, Uint8Array>): Value {
  switch (v.kind.case) {
    case "payload": {
      const p = v.kind.value;
      if (!p.encoding.startsWith(REF_PREFIX)) return v;
      const data = blobs.get(hex(p.data));
      if (!data) throw new Error(`payload ${hex(p.data)} is missing from payload_blobs`);
      return create(ValueSchema, { kind: { case: "payload", value: create(PayloadSchema, { encoding: p.encoding.slice(REF_PREFIX.length), data }) } });
    }
    case "list":
      return create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items: v.kind.value.items.map((i) => internalize(i, blobs)) }) } });
    case "map":
      return create(ValueSchema, {
        kind: { case: "map", value: create(ValueMapSchema, { entries: mapValues(v.kind.value.entries, (e) => internalize(e, blobs)) }) },
      });
    default:
      return v;
  }
}

function mapValues(entries: Record<string, Value>, f: (v: Value) => Value): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const k in entries) out[k] = f(entries[k]);
  return out;
}
