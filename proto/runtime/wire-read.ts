// Reading protobuf wire bytes by hand: numbers, tags, skipping a field. Shared
// by the code that looks at messages without decoding them (wire-scan,
// wire-canonical, decode-in-slices, the server's admission).

/** The varint at `pos` and the position after it; undefined when the bytes end inside it or it is longer than 10 bytes. */
export function readVarint(bytes: Uint8Array, pos: number): [value: number, next: number] | undefined {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < bytes.length; i++) {
    const b = bytes[pos++];
    // Past 2^53 precision is lost; such numbers only matter as lengths, which are checked against the end.
    result += (b & 0x7f) * scale;
    if (b < 0x80) return [result, pos];
    scale *= 128;
  }
  return undefined;
}

/** The tag at `pos`: field number, wire type, and the position after it. */
export function readTag(bytes: Uint8Array, pos: number): [no: number, wireType: number, next: number] | undefined {
  const v = readVarint(bytes, pos);
  return v && [Math.floor(v[0] / 8), v[0] % 8, v[1]];
}

/**
 * Where the value of a field of `wireType` starting at `pos` ends; for a
 * length-delimited one also where its content starts. Undefined for a wire
 * type this protocol does not use (groups) or a malformed number.
 */
export function readValue(bytes: Uint8Array, pos: number, wireType: number): { start: number; end: number } | undefined {
  switch (wireType) {
    case 0: {
      const v = readVarint(bytes, pos);
      return v && { start: pos, end: v[1] };
    }
    case 1:
      return { start: pos, end: pos + 8 };
    case 5:
      return { start: pos, end: pos + 4 };
    case 2: {
      const len = readVarint(bytes, pos);
      return len && { start: len[1], end: len[1] + len[0] };
    }
    default:
      return undefined;
  }
}

/** The content of the first length-delimited field `no` of a message, if the message is readable that far. */
export function firstField(bytes: Uint8Array, no: number): Uint8Array | undefined {
  let pos = 0;
  while (pos < bytes.length) {
    const tag = readTag(bytes, pos);
    const value = tag && readValue(bytes, tag[2], tag[1]);
    if (!tag || !value || value.end > bytes.length) return undefined;
    if (tag[0] === no && tag[1] === 2) return bytes.subarray(value.start, value.end);
    pos = value.end;
  }
  return undefined;
}
