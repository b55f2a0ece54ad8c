// google.rpc.Status with google.rpc.BadRequest details, as gRPC's richer error
// model carries them in the `grpc-status-details-bin` trailer: clients in any
// language read every field violation of a refused request from it (Go's
// status.FromError, Python's grpc_status.rpc_status.from_call, ...). Encoded by
// hand, like health.ts: four small messages do not warrant generated code.
//
// A trailer must stay small: HTTP/2 peers refuse header blocks past ~16 KB, and
// a refused trailer leaves the client with no status at all (and, with
// grpc-js, hangs its other calls on the connection). The list is cut to fit
// `maxBytes`; the status message says how many there were.

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { shortPath, type Violation } from "@pipewright/protocol";

const BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";

/** Encoded google.rpc.Status {code, message, details: [Any{BadRequest}]}, at most `maxBytes` long. */
export function badRequestStatus(code: number, message: string, violations: readonly Violation[], maxBytes = 8 * 1024): Uint8Array {
  const head = new BinaryWriter().tag(1, WireType.Varint).int32(code).tag(2, WireType.LengthDelimited).string(message.slice(0, 1024)).finish();
  const budget = maxBytes - head.length - BAD_REQUEST_TYPE.length - 32; // Any's tags and lengths
  const entries: Uint8Array[] = [];
  let used = 0;
  for (const v of violations) {
    const entry = new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .string(shortPath(v.field))
      .tag(2, WireType.LengthDelimited)
      .string(v.description.slice(0, 500))
      .finish();
    if (used + entry.length + 8 > budget) break;
    entries.push(entry);
    used += entry.length + 8;
  }
  const badRequest = new BinaryWriter();
  for (const e of entries) badRequest.tag(1, WireType.LengthDelimited).bytes(e);
  const any = new BinaryWriter().tag(1, WireType.LengthDelimited).string(BAD_REQUEST_TYPE).tag(2, WireType.LengthDelimited).bytes(badRequest.finish()).finish();
  const status = new BinaryWriter().tag(1, WireType.Varint).int32(code).tag(2, WireType.LengthDelimited).string(message.slice(0, 1024));
  return status.tag(3, WireType.LengthDelimited).bytes(any).finish();
}
