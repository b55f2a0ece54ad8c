// The TypeScript codec between JavaScript values and pipewright.v1.Value.
//
// Plain values travel as JSON payloads. Object-shaped pipeline state travels as
// a ValueMap (one JSON payload per key) so that the server can merge branch
// states key by key without decoding anything. Errors travel as TaskError and
// arrive in task code as `RemoteError`.

import { create } from "@bufbuild/protobuf";
import { PayloadSchema, TaskErrorSchema, ValueSchema, type TaskError, type Value } from "../gen/pipewright/v1/value_pb.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** An error raised in a task (or made by the server), as seen by other tasks and clients. */
export class RemoteError extends Error {
  /** The error's type name, e.g. "TypeError" or "pipewright.Timeout". */
  readonly type: string;
  /** Step path where it was raised. */
  readonly origin: string;
  /** Structured details, if the raiser gave any. */
  readonly details: unknown;
  /** For "pipewright.AggregateError": every failed branch or node. */
  readonly causes: RemoteError[];
  /** True when the raiser said retrying cannot help. */
  readonly terminal: boolean;
  readonly remoteStack: string;

  constructor(e: { type: string; message: string; origin?: string; details?: unknown; causes?: RemoteError[]; terminal?: boolean; stack?: string }) {
    super(e.message);
    this.name = e.type;
    this.type = e.type;
    this.origin = e.origin ?? "";
    this.details = e.details ?? null;
    this.causes = e.causes ?? [];
    this.terminal = e.terminal ?? false;
    this.remoteStack = e.stack ?? "";
  }

  /** A plain, comparable form (no stack traces). */
  toJSON(): object {
    return { type: this.type, message: this.message, origin: this.origin, details: this.details, causes: this.causes.map((c) => c.toJSON()) };
  }
}

/** Encodes any JSON-compatible value; `undefined` becomes the empty Value (null). */
export function encodeValue(value: unknown): Value {
  if (value instanceof RemoteError) return create(ValueSchema, { kind: { case: "error", value: encodeError(value) } });
  const text = JSON.stringify(value);
  if (text === undefined) return create(ValueSchema, {});
  return create(ValueSchema, { kind: { case: "payload", value: create(PayloadSchema, { data: utf8.encode(text) }) } });
}

/** Encodes pipeline state: a plain object becomes a ValueMap, anything else a payload. */
export function encodeState(state: unknown): Value {
  if (isPlainObject(state)) {
    const entries: Record<string, Value> = {};
    for (const [k, v] of Object.entries(state)) {
      if (v !== undefined) entries[k] = encodeValue(v);
    }
    return create(ValueSchema, { kind: { case: "map", value: { entries } } });
  }
  return encodeValue(state);
}

export function decodeValue(value: Value | undefined): unknown {
  if (!value) return null;
  const kind = value.kind;
  switch (kind.case) {
    case "payload": {
      const { encoding, data } = kind.value;
      if (encoding === "" || encoding === "json") return data.length === 0 ? null : JSON.parse(utf8Decoder.decode(data));
      if (encoding === "text") return utf8Decoder.decode(data);
      if (encoding === "bytes") return data;
      throw new Error(`cannot decode a payload with encoding ${JSON.stringify(encoding)}`);
    }
    case "list":
      return kind.value.items.map(decodeValue);
    case "map": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(kind.value.entries)) out[k] = decodeValue(v);
      return out;
    }
    case "error":
      return decodeError(kind.value);
    default:
      return null;
  }
}

export function encodeError(e: RemoteError | { type: string; message: string; stack?: string; details?: unknown; terminal?: boolean }): TaskError {
  const remote = e instanceof RemoteError ? e : undefined;
  return create(TaskErrorSchema, {
    type: e.type,
    message: e.message,
    stack: remote ? remote.remoteStack : (e.stack ?? ""),
    details: e.details === undefined || e.details === null ? undefined : encodeValue(e.details),
    terminal: e.terminal ?? false,
    origin: remote?.origin ?? "",
    causes: remote ? remote.causes.map(encodeError) : [],
  });
}

export function decodeError(e: TaskError): RemoteError {
  return new RemoteError({
    type: e.type,
    message: e.message,
    origin: e.origin,
    details: e.details ? decodeValue(e.details) : null,
    causes: e.causes.map(decodeError),
    terminal: e.terminal,
    stack: e.stack,
  });
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
