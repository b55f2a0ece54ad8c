// Building and comparing Values on the server side. The server only ever
// wraps payloads in structure (lists, maps, errors); it never decodes one.

import { create, equals } from "@bufbuild/protobuf";
import { TaskErrorSchema, ValueSchema, ValueListSchema, ValueMapSchema, type TaskError, type Value } from "@pipewright/protocol";
import { ErrorTypes } from "@pipewright/protocol";

/** A Value with no kind: "nothing" (an SDK reads it as null). */
export function noneValue(): Value {
  return create(ValueSchema, {});
}

export function listValue(items: Value[]): Value {
  return create(ValueSchema, { kind: { case: "list", value: create(ValueListSchema, { items }) } });
}

export function mapValue(entries: Record<string, Value>): Value {
  return create(ValueSchema, { kind: { case: "map", value: create(ValueMapSchema, { entries }) } });
}

export function errorValue(error: TaskError): Value {
  return create(ValueSchema, { kind: { case: "error", value: error } });
}

export function valuesEqual(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return equals(ValueSchema, a, b);
}

/** A server-made error (type prefixed "pipewright."). */
export function serverError(type: string, message: string, origin = "", causes: TaskError[] = []): TaskError {
  return create(TaskErrorSchema, { type: `pipewright.${type}`, message, origin, causes });
}

export { ErrorTypes };

/** Errors that retrying the same call cannot fix, whatever the policy says. */
export const NEVER_RETRIED: ReadonlySet<string> = new Set([
  ErrorTypes.cancelled,
  ErrorTypes.limitExceeded,
  ErrorTypes.invalidPipeline,
  ErrorTypes.aggregate,
  ErrorTypes.internal,
  ErrorTypes.invalidResult,
]);
