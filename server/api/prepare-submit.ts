// Checks a SubmitRunRequest and turns it into what the engine persists.
// Every problem is reported at once, each with its field path.

import { createHash } from "node:crypto";
import { clone, toBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { fieldBytes } from "../../proto/runtime/wire-fields.js";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { SubmitRunRequestSchema, type SubmitRunRequest } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { pushAll } from "../core/arrays.js";
import { invalidRequest, PipewrightError } from "../core/errors.js";
import { countTasks, validatePipeline, type Violation } from "../core/validate-pipeline.js";
import type { PreparedSubmit } from "../engine/run-engine.js";
import { encodeSpec } from "../engine/run-engine.js";

const MAX_ID_LENGTH = 200;

export interface SubmitLimits {
  maxTasks: number;
}

/**
 * Prepares submissions; throws one INVALID_ARGUMENT listing every violation of
 * every request. `raw` are the requests' bytes as received, when known: the
 * pipeline is then stored and the request hashed as it arrived, with no
 * encoding again.
 */
export function prepareSubmits(requests: SubmitRunRequest[], limits: SubmitLimits, prefixOf: (i: number) => string, raw?: Uint8Array[]): PreparedSubmit[] {
  const violations: Violation[] = [];
  requests.forEach((r, i) => checkRequest(r, prefixOf(i), violations));
  if (violations.length) throw invalidRequest(violations);
  return requests.map((r, i) => {
    const pipeline = r.pipeline!;
    const taskCount = countTasks(pipeline);
    if (taskCount > limits.maxTasks) {
      throw new PipewrightError("RESOURCE_EXHAUSTED", `${prefixOf(i)}pipeline holds ${taskCount} tasks, over this server's limit of ${limits.maxTasks} per run`);
    }
    const bytes = raw?.[i];
    return {
      requestId: r.requestId,
      requestHash: r.requestId ? (bytes ? hashWithoutRequestId(bytes) : requestHash(r)) : null,
      name: r.name,
      pipeline,
      spec: (bytes && fieldBytes(bytes, 2)[0]) || encodeSpec(pipeline),
      taskCount,
      runTimeoutMs: durationMs(r.runTimeout),
    };
  });
}

function checkRequest(r: SubmitRunRequest, prefix: string, out: Violation[]): void {
  if (r.requestId.length > MAX_ID_LENGTH) out.push({ field: `${prefix}request_id`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.requestId.length}` });
  if (r.name.length > MAX_ID_LENGTH) out.push({ field: `${prefix}name`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.name.length}` });
  if (r.runTimeout && (r.runTimeout.seconds < 0n || r.runTimeout.nanos < 0)) {
    out.push({ field: `${prefix}run_timeout`, description: `must be a non-negative duration, got ${r.runTimeout.seconds}s` });
  }
  if (!r.pipeline) {
    out.push({ field: `${prefix}pipeline`, description: "must be set: the pipeline to run" });
    return;
  }
  pushAll(out, validatePipeline(r.pipeline, "root", `${prefix}pipeline`));
}

/** The same as requestHash, over the received bytes: every field but request_id (field 1). */
function hashWithoutRequestId(bytes: Uint8Array): Uint8Array {
  const hash = createHash("sha256");
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const start = r.pos;
    const [no, type] = r.tag();
    r.skip(type, no);
    if (no !== 1) hash.update(bytes.subarray(start, r.pos));
  }
  return hash.digest();
}

/** Identifies a submission regardless of its request_id, to tell a retry from a conflict. */
function requestHash(r: SubmitRunRequest): Uint8Array {
  const copy = clone(SubmitRunRequestSchema, r);
  copy.requestId = "";
  return createHash("sha256").update(toBinary(SubmitRunRequestSchema, copy)).digest();
}

function durationMs(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;
}

