// Reading length-delimited fields straight from protobuf wire bytes, without
// decoding the rest: the server stores parts of what it received (a submitted
// pipeline, a worker's result) exactly as they arrived, instead of encoding
// decoded objects again (protobuf-es is reflection-based: at 20,000 tasks/s
// the re-encoding alone cost a fifth of the server's CPU).

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** The raw bytes of every occurrence of length-delimited field `field`, in order. */
export function fieldBytes(bytes: Uint8Array, field: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === field && type === WireType.LengthDelimited) out.push(r.bytes());
    else r.skip(type, no);
  }
  return out;
}
