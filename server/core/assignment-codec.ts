// The TaskAssignment a dispatch becomes: stored in the queue row without its
// key (the attempt is only known when a worker claims it), sent with it. The
// stored form refers to big payloads instead of holding them (payload-refs.ts).

import { create, toBinary } from "@bufbuild/protobuf";
import { ParentResults } from "@pipewright/protocol";
import { ValueMapSchema, type Value } from "@pipewright/protocol";
import { TaskAssignmentSchema, type TaskAssignment } from "@pipewright/protocol";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Dispatch } from "./run-machine.js";
import { valuesStats } from "@pipewright/protocol";
import { BLOB_THRESHOLD, externalize, type BlobData } from "./payload-refs.js";

/** Server defaults for calls that set no timeout; 0 means none. */
export interface TimeoutDefaults {
  waitMs: number;
  executionMs: number;
  heartbeatMs: number;
}

export interface EncodedAssignment {
  /** The assignment as a worker gets it (handed to a local worker at once). */
  message: TaskAssignment;
  /** Its stored form (the queue row): big payloads as references. */
  bytes: Uint8Array;
  /** The payloads the stored form refers to. */
  blobs: BlobData[];
  /** About its bytes in a message (for packing several in one). */
  size: number;
}

/** `traceContext`: the W3C headers of the attempt's span, when its run is traced (TaskAssignment.trace_context). */
export function encodeAssignment(d: Dispatch, defaults: TimeoutDefaults, traceContext?: Record<string, string>): EncodedAssignment {
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
    traceContext,
  });
  const blobs = new Map<string, BlobData>();
  const stored = d.inputBytes < BLOB_THRESHOLD ? message : storedForm(message, blobs);
  return { message, bytes: toBinary(TaskAssignmentSchema, stored), blobs: [...blobs.values()], size: d.inputBytes + 256 };
}

/** The values an assignment carries. */
function carried(a: TaskAssignment): (Value | undefined)[] {
  const out: (Value | undefined)[] = [...a.args, ...Object.values(a.kwargs), a.state];
  if (a.parentResults) for (const v of Object.values(a.parentResults.entries)) out.push(v);
  return out;
}

/** About how many bytes an assignment takes in a message (for packing several in one). */
export function assignmentSize(a: TaskAssignment): number {
  return valuesStats(carried(a)).bytes + 256;
}

/** The assignment with its big payloads replaced by references. */
function storedForm(a: TaskAssignment, blobs: Map<string, BlobData>): TaskAssignment {
  const entries = (e: Record<string, Value>) => Object.fromEntries(Object.entries(e).map(([k, v]) => [k, externalize(v, blobs)]));
  return create(TaskAssignmentSchema, {
    ...a,
    args: a.args.map((v) => externalize(v, blobs)),
    kwargs: entries(a.kwargs),
    state: a.state && externalize(a.state, blobs),
    parentResults: a.parentResults && create(ValueMapSchema, { entries: entries(a.parentResults.entries) }),
  });
}
