// Checks a SubmitRunRequest and turns it into what the engine persists.
// Every problem is reported at once, each with its field path.

import { createHash } from "node:crypto";
import { clone, toBinary } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Pipeline } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { SubmitRunRequestSchema, type SubmitRunRequest } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { PipewrightError } from "../core/errors.js";
import { countTasks, formatViolations, validatePipeline, type Violation } from "../core/validate-pipeline.js";
import type { PreparedSubmit } from "../engine/run-engine.js";
import { encodeSpec } from "../engine/run-engine.js";

const MAX_ID_LENGTH = 200;

export interface SubmitLimits {
  maxTasks: number;
}

/** Prepares submissions; throws one INVALID_ARGUMENT listing every violation of every request. */
export function prepareSubmits(requests: SubmitRunRequest[], limits: SubmitLimits, prefixOf: (i: number) => string): PreparedSubmit[] {
  const violations: Violation[] = [];
  const unimplemented: string[] = [];
  requests.forEach((r, i) => checkRequest(r, prefixOf(i), violations, unimplemented));
  if (violations.length) throw new PipewrightError("INVALID_ARGUMENT", `invalid request: ${formatViolations(violations)}`);
  if (unimplemented.length) throw new PipewrightError("UNIMPLEMENTED", `not executed by this server yet: ${unimplemented.join("; ")}`);
  return requests.map((r, i) => {
    const pipeline = r.pipeline!;
    const taskCount = countTasks(pipeline);
    if (taskCount > limits.maxTasks) {
      throw new PipewrightError("RESOURCE_EXHAUSTED", `${prefixOf(i)}pipeline holds ${taskCount} tasks, over this server's limit of ${limits.maxTasks} per run`);
    }
    return {
      requestId: r.requestId,
      requestHash: r.requestId ? requestHash(r) : null,
      name: r.name,
      pipeline,
      spec: encodeSpec(pipeline),
      taskCount,
      runTimeoutMs: durationMs(r.runTimeout),
    };
  });
}

function checkRequest(r: SubmitRunRequest, prefix: string, out: Violation[], unimplemented: string[]): void {
  if (r.requestId.length > MAX_ID_LENGTH) out.push({ field: `${prefix}request_id`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.requestId.length}` });
  if (r.name.length > MAX_ID_LENGTH) out.push({ field: `${prefix}name`, description: `must be at most ${MAX_ID_LENGTH} characters, got ${r.name.length}` });
  if (r.runTimeout && (r.runTimeout.seconds < 0n || r.runTimeout.nanos < 0)) {
    out.push({ field: `${prefix}run_timeout`, description: `must be a non-negative duration, got ${r.runTimeout.seconds}s` });
  }
  if (!r.pipeline) {
    out.push({ field: `${prefix}pipeline`, description: "must be set: the pipeline to run" });
    return;
  }
  out.push(...validatePipeline(r.pipeline, "root", `${prefix}pipeline`));
  findUnimplemented(r.pipeline, `${prefix}pipeline`, unimplemented);
}

/** Fields the contract has but this engine does not execute yet: refused, never ignored. */
function findUnimplemented(p: Pipeline, path: string, out: string[]): void {
  const calls = (prefix: string, call: { options?: { waitTimeout?: Duration; executionTimeout?: Duration; heartbeatTimeout?: Duration } } | undefined) => {
    const o = call?.options;
    if (o?.waitTimeout) out.push(`${prefix}.options.wait_timeout`);
    if (o?.executionTimeout) out.push(`${prefix}.options.execution_timeout`);
    if (o?.heartbeatTimeout) out.push(`${prefix}.options.heartbeat_timeout`);
  };
  p.steps.forEach((s, i) => {
    const sp = `${path}.steps[${i}]`;
    switch (s.kind.case) {
      case "task":
      case "exceptionally":
        calls(`${sp}.${s.kind.case}`, s.kind.value);
        break;
      case "group":
        s.kind.value.branches.forEach((b, j) => findUnimplemented(b, `${sp}.group.branches[${j}]`, out));
        break;
      case "dag":
        s.kind.value.nodes.forEach((n, j) => calls(`${sp}.dag.nodes[${j}].task`, n.task));
        break;
    }
  });
  if (p.finally) calls(`${path}.finally`, p.finally);
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

