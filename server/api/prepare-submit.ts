// Checks a SubmitRunRequest and turns it into what the engine persists.
// Every problem is reported at once, each with its field path.

import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { DEFAULT_NAMESPACE } from "@pipewright/protocol";
import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { canonicalBytes } from "@pipewright/protocol";
import { planOf } from "@pipewright/protocol";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { fieldBytes } from "@pipewright/protocol";
import { PipelineSchema, SubmitRunRequestSchema, type SubmitRunRequest } from "@pipewright/protocol";
import { pushAll } from "../core/arrays.js";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import { checkDuration, countTasks, validatePipelineInSlices, type Violation } from "@pipewright/protocol";
import { pauseForOthers } from "../engine/pause-for-others.js";
import type { PreparedSubmit } from "../engine/items.js";
import { optionalMs } from "@pipewright/protocol";

const MAX_ID_LENGTH = 200;
const NO_HOOKS = new Set<string>();

export interface SubmitLimits {
  maxTasks: number;
}

/**
 * Prepares submissions; throws one INVALID_ARGUMENT listing every violation of
 * every request. `raw` are the requests' bytes as received, when known: the
 * pipeline is then stored and the request hashed as it arrived, with no
 * encoding again.
 */
export async function prepareSubmits(
  requests: SubmitRunRequest[],
  limits: SubmitLimits,
  prefixOf: (i: number) => string,
  raw?: Uint8Array[],
  namespace = DEFAULT_NAMESPACE,
): Promise<PreparedSubmit[]> {
  const violations: Violation[] = [];
  for (const [i, r] of requests.entries()) await checkRequest(r, prefixOf(i), violations);
  if (violations.length) throw invalidRequest(violations);
  return requests.map((r, i) => {
    const pipeline = r.pipeline!;
    const taskCount = countTasks(pipeline);
    if (taskCount > limits.maxTasks) {
      throw new PipewrightError(
        "RESOURCE_EXHAUSTED",
        `${prefixOf(i)}pipeline holds ${taskCount} tasks, over this server's limit of ${limits.maxTasks} per run`,
      );
    }
    const bytes = raw?.[i];
    return {
      namespace,
      requestId: r.requestId,
      requestHash: r.requestId ? (bytes ? hashWithoutRequestId(bytes) : requestHash(r)) : null,
      name: r.name,
      pipeline,
      spec: (bytes && fieldBytes(bytes, PIPELINE_FIELD)[0]) || toBinary(PipelineSchema, pipeline),
      taskCount,
      runTimeoutMs: optionalMs(r.runTimeout) ?? 0,
      startAt: startAtOf(r, Date.now()),
    };
  });
}

async function checkRequest(r: SubmitRunRequest, prefix: string, out: Violation[]): Promise<void> {
  if (r.requestId.length > MAX_ID_LENGTH)
    out.push({ field: `${prefix}request_id`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.requestId.length}` });
  if (r.name.length > MAX_ID_LENGTH) out.push({ field: `${prefix}name`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.name.length}` });
  checkDuration(r.runTimeout, `${prefix}run_timeout`, out);
  checkStart(r, prefix, out);
  if (!r.pipeline) {
    out.push({ field: `${prefix}pipeline`, description: "must be set: the pipeline to run" });
    return;
  }
  pushAll(out, await validatePipelineInSlices(r.pipeline, "root", `${prefix}pipeline`, pauseForOthers));
}

/** How far ahead a run may be started (start_time, start_delay): a year and a day. */
export const MAX_START_AHEAD_MS = 366 * 24 * 3600_000;

function checkStart(r: SubmitRunRequest, prefix: string, out: Violation[]): void {
  if (r.startTime && r.startDelay) {
    out.push({ field: `${prefix}start_time`, description: "set start_time or start_delay, not both" });
    return;
  }
  if (r.startDelay) {
    const before = out.length;
    checkDuration(r.startDelay, `${prefix}start_delay`, out);
    if (out.length === before && durationMs(r.startDelay) > MAX_START_AHEAD_MS)
      out.push({ field: `${prefix}start_delay`, description: `must be at most 366 days, got ${r.startDelay.seconds}s` });
  }
  if (r.startTime) {
    const t = r.startTime;
    if (t.nanos < 0 || t.nanos > 999_999_999 || t.seconds < 0n) out.push({ field: `${prefix}start_time`, description: "must be a valid time after 1970" });
    else if (timestampMs(t) > Date.now() + MAX_START_AHEAD_MS) out.push({ field: `${prefix}start_time`, description: "must be at most 366 days ahead" });
  }
}

/** When a valid request's run starts (ms since the epoch); undefined: at once. A time already past starts it at once. */
export function startAtOf(r: SubmitRunRequest, now: number): number | undefined {
  const at = r.startTime ? timestampMs(r.startTime) : r.startDelay ? now + durationMs(r.startDelay) : undefined;
  return at !== undefined && at > now ? at : undefined;
}

// Field numbers of the received bytes this file reads without decoding them again (from the schema, never by hand).
const PIPELINE_FIELD = SubmitRunRequestSchema.field.pipeline.number;
const REQUEST_ID_FIELD = SubmitRunRequestSchema.field.requestId.number;

/**
 * Identifies a submission by meaning, regardless of its request_id: the
 * canonical form of the received bytes (map entries sorted by key: another
 * language's map order must not turn a retry into ALREADY_EXISTS), every
 * field but request_id.
 */
function hashWithoutRequestId(received: Uint8Array): Uint8Array {
  const bytes = canonicalBytes(planOf(SubmitRunRequestSchema, NO_HOOKS), received);
  const hash = createHash("sha256");
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const start = r.pos;
    const [no, type] = r.tag();
    r.skip(type, no);
    if (no !== REQUEST_ID_FIELD) hash.update(bytes.subarray(start, r.pos));
  }
  return hash.digest();
}

/** The same, for a request that came without its bytes (in-process callers). */
function requestHash(r: SubmitRunRequest): Uint8Array {
  return hashWithoutRequestId(toBinary(SubmitRunRequestSchema, r));
}
