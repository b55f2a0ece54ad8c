// Durations and timestamps of messages in milliseconds, one way everywhere
// (protobuf-es's own helpers underneath): an unset optional field is
// `undefined`, and each caller says what that means for it (`?? default`, or
// `|| undefined` where 0 means "none" too).

import { durationMs, timestampMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";

/** Milliseconds of an optional Duration field; undefined when unset. */
export function optionalMs(d: Duration | undefined): number | undefined {
  return d ? durationMs(d) : undefined;
}

/** Milliseconds since the epoch of an optional Timestamp field; undefined when unset. */
export function optionalTimeMs(t: Timestamp | undefined): number | undefined {
  return t ? timestampMs(t) : undefined;
}
