// What a worker may send as a task's result: bounded to what one message can
// carry, so that no result can break the worker's stream.

import { create, toBinary } from "@bufbuild/protobuf";
import {
  boundError,
  ErrorTypes,
  MAX_MESSAGE_BYTES,
  PipelineSchema,
  TaskErrorSchema,
  TaskResultSchema,
  valueStats,
  valuesStats,
  type TaskResult,
} from "@pipewright/protocol";

/** About how many bytes a result takes in a message. */
export function resultSize(r: TaskResult): number {
  const o = r.outcome;
  const carried = o.case === "value" ? [o.value, r.state] : [r.state];
  let bytes = valuesStats(carried).bytes + (o.case === "error" ? valueStats(o.value).bytes : 0) + 64;
  if (o.case === "pipeline") bytes += toBinary(PipelineSchema, o.value).length;
  return bytes;
}

/**
 * A result as it can be sent: errors cut to the shared limits (a task's
 * error message and stack are often the same long text twice), and a result
 * too big for any message replaced by a terminal error saying so: sent as it
 * was, it broke the stream, the server re-queued the attempt, and the same
 * result broke it again.
 */
export function sendable(r: TaskResult): TaskResult {
  if (r.outcome.case === "error") r.outcome = { case: "error", value: boundError(r.outcome.value) };
  const size = resultSize(r);
  if (size <= MAX_MESSAGE_BYTES - 1024 * 1024) return r;
  const message = `the task's result is about ${size} bytes, over the ${MAX_MESSAGE_BYTES} bytes a message can carry`;
  return create(TaskResultSchema, {
    key: r.key,
    startTime: r.startTime,
    outcome: { case: "error", value: create(TaskErrorSchema, { type: ErrorTypes.invalidResult, message, terminal: true }) },
  });
}
