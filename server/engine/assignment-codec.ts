// The TaskAssignment a dispatch becomes: stored in the queue row without its
// key (the attempt is only known when a worker claims it), sent with it.

import { create, toBinary } from "@bufbuild/protobuf";
import { ParentResults } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { ValueMapSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { TaskAssignmentSchema, type TaskAssignment } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Dispatch } from "../core/run-machine.js";

/** Server defaults for calls that set no timeout; 0 means none. */
export interface TimeoutDefaults {
  waitMs: number;
  executionMs: number;
  heartbeatMs: number;
}

/** The assignment as a message (handed to a local worker at once) and as stored bytes (the queue row). */
export function encodeAssignment(d: Dispatch, defaults: TimeoutDefaults): { message: TaskAssignment; bytes: Uint8Array } {
  const options = d.call.options;
  const mode = d.parentResultsMode;
  const message = create(TaskAssignmentSchema, {
      task: d.call.task,
      args: d.input.args,
      kwargs: d.input.kwargs,
      state: d.input.state,
      parentResults: d.input.parentResults ? create(ValueMapSchema, { entries: d.input.parentResults }) : undefined,
      parentResultsMode: mode === ParentResults.UNSPECIFIED ? ParentResults.UNSPECIFIED : mode,
      retryNumber: d.retry,
      executionTimeout: options?.executionTimeout ?? (defaults.executionMs ? durationFromMs(defaults.executionMs) : undefined),
      heartbeatTimeout: options?.heartbeatTimeout ?? (defaults.heartbeatMs ? durationFromMs(defaults.heartbeatMs) : undefined),
      displayName: options?.displayName || d.call.task,
      path: d.path,
    });
  return { message, bytes: toBinary(TaskAssignmentSchema, message) };
}
