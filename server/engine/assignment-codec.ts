// The TaskAssignment a dispatch becomes: stored in the queue row without its
// key (the attempt is only known when a worker claims it), sent with it.

import { create, toBinary } from "@bufbuild/protobuf";
import { ParentResults } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { ValueMapSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { TaskAssignmentSchema } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Dispatch } from "../core/run-machine.js";

/** Server defaults for calls that set no timeout; 0 means none. */
export interface TimeoutDefaults {
  waitMs: number;
  executionMs: number;
  heartbeatMs: number;
}

export function encodeAssignment(d: Dispatch, defaults: TimeoutDefaults): Uint8Array {
  const options = d.call.options;
  const mode = d.parentResultsMode;
  return toBinary(
    TaskAssignmentSchema,
    create(TaskAssignmentSchema, {
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
    }),
  );
}
