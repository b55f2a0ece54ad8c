/**
 * What both halves of the gRPC glue (grpc-bridge.ts: server, grpc-client.ts:
 * client) share: messages to and from bytes with the protocol's limits, and
 * the bytes each received message was decoded from.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageShape } from "@bufbuild/protobuf";
import { MAX_MESSAGE_DEPTH } from "./limits.js";

/** A method descriptor of this kind with these messages (for the typed handler and client functions). */
export type Rpc<K extends DescMethod["methodKind"], I extends DescMessage, O extends DescMessage> = { methodKind: K; input: I; output: O };

export const encoder = (schema: DescMessage) => (m: unknown) => {
  const bytes = toBinary(schema, m as MessageShape<DescMessage>);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};
export const rawBytes = new WeakMap<object, Uint8Array>();
/** Every side decodes with the same recursion limit (protobuf-es's default, 100, is below what the protocol allows). */
export const DECODE_OPTIONS = { recursionLimit: MAX_MESSAGE_DEPTH };
export const decoder = (schema: DescMessage) => (b: Buffer) => {
  const message = fromBinary(schema, b, DECODE_OPTIONS);
  rawBytes.set(message, b);
  return message;
};

/**
 * The bytes a received message was decoded from. Lets a handler keep (or
 * hash, or store) parts of a request as they arrived instead of encoding the
 * decoded objects again.
 */
export function receivedBytes(message: object): Uint8Array | undefined {
  return rawBytes.get(message);
}
export const methodPath = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;
