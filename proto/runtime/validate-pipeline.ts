// Validation of a pipeline as a client submits it or a worker returns it.
//
// One implementation serves both sides: the server calls it before writing
// anything, and the TypeScript client imports it so a bad pipeline fails on
// the client with the very same messages. Every violation is reported (not
// just the first), each naming its field path and saying what was allowed and
// what arrived: `steps[2].group.max_parallelism: must be >= 0, got -3`.

import { QUEUE_NAME_CONTROL } from "./namespaces.js";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { ParentResults, type Dag, type Pipeline, type TaskCall, type TaskOptions, type Wait } from "../gen/pipewright/v1/pipeline_pb.js";
import { waitNameProblem } from "./wait-names.js";
import type { Value } from "../gen/pipewright/v1/value_pb.js";
import { MAX_DURATION_SECONDS, MAX_GROUP_NESTING, MAX_NAME_LENGTH } from "./limits.js";

/** One problem with a request, located by its field path. */
export interface Violation {
  field: string;
  description: string;
}

/** Where the pipeline sits, which changes a few rules. */
export type PipelineRole = "root" | "branch" | "child";

const TASK_NAME = /^[A-Za-z_][A-Za-z0-9_.:\/-]*$/;
const MAX_ENCODING_LENGTH = 100;
const MAX_ATTEMPTS_LIMIT = 1000;
export { MAX_GROUP_NESTING };
const KNOWN_PARENT_RESULTS = new Set<number>(Object.values(ParentResults).filter((v): v is number => typeof v === "number"));

/**
 * Lists every violation in `pipeline`; empty when it is valid.
 *
 * @example
 *   const problems = validatePipeline(pipeline);
 *   if (problems.length) throw new Error(formatViolations(problems));
 */
export function validatePipeline(pipeline: Pipeline, role: PipelineRole = "root", prefix = ""): Violation[] {
  const out: Violation[] = [];
  const checking = checkPipeline(pipeline, role, prefix, out, 0);
  while (!checking.next().done);
  return out;
}

/**
 * validatePipeline, awaiting `pause` every few hundred branches so that a
 * server can let other work run (100,000 branches take ~40 ms to check).
 */
export async function validatePipelineInSlices(pipeline: Pipeline, role: PipelineRole, prefix: string, pause: () => Promise<void>): Promise<Violation[]> {
  const out: Violation[] = [];
  const checking = checkPipeline(pipeline, role, prefix, out, 0);
  for (let n = 1; !checking.next().done; n++) if (n % 256 === 0) await pause();
  return out;
}

/** Characters of violations named in a message; the rest are counted ("and 980 more"). */
const NAMED_CHARS = 1500;

/**
 * Joins violations into one message: a count, then as many as fit in about
 * 1,500 characters. Bounded whatever the count: an error message travels in a
 * gRPC trailer, and past ~16 KB of trailers a client receives nothing at all.
 */
export function formatViolations(violations: readonly Violation[]): string {
  const noun = violations.length === 1 ? "violation" : "violations";
  const named: string[] = [];
  let used = 0;
  for (const v of violations) {
    const text = `${shortPath(v.field)}: ${v.description.length > 300 ? `${v.description.slice(0, 300)}…` : v.description}`;
    if (named.length > 0 && used + text.length > NAMED_CHARS) break;
    named.push(text);
    used += text.length + 2;
  }
  const more = violations.length - named.length;
  return `${violations.length} ${noun}: ${named.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
}

/** A field path of at most ~200 characters: its head and its tail (deep paths repeat themselves in the middle). */
export function shortPath(path: string): string {
  return path.length <= 200 ? path : `${path.slice(0, 60)}…${path.slice(-140)}`;
}

function at(prefix: string, field: string): string {
  return prefix ? `${prefix}.${field}` : field;
}

/** Checks a pipeline; a generator that pauses (yields) after each branch of a group. */
function* checkPipeline(p: Pipeline, role: PipelineRole, prefix: string, out: Violation[], nesting: number): Generator<void, void, void> {
  if (nesting > MAX_GROUP_NESTING) {
    out.push({
      field: prefix,
      description: `groups nest at most ${MAX_GROUP_NESTING} levels deep; use a task that returns a child pipeline for deeper structure`,
    });
    return;
  }
  if (p.steps.length === 0) {
    out.push({ field: at(prefix, "steps"), description: "must not be empty, got 0 steps" });
  }
  if (p.inline && role !== "child") {
    out.push({ field: at(prefix, "inline"), description: `only a child pipeline returned by a task can be inline, this is a ${role} pipeline` });
  }
  for (let i = 0; i < p.steps.length; i++) {
    const step = p.steps[i];
    const path = at(prefix, `steps[${i}]`);
    switch (step.kind.case) {
      case "task":
        checkTaskCall(step.kind.value, `${path}.task`, out);
        break;
      case "exceptionally":
        checkTaskCall(step.kind.value, `${path}.exceptionally`, out);
        break;
      case "group": {
        const g = step.kind.value;
        const gp = `${path}.group`;
        if (g.maxParallelism < 0) {
          out.push({ field: `${gp}.max_parallelism`, description: `must be >= 0 (0 = unlimited), got ${g.maxParallelism}` });
        }
        if (g.numStages < 0) {
          out.push({ field: `${gp}.num_stages`, description: `must be >= 0 (0 or 1 = one stage), got ${g.numStages}` });
        } else if (g.numStages > 1 && g.numStages > g.branches.length) {
          out.push({ field: `${gp}.num_stages`, description: `must be at most the number of branches (${g.branches.length}), got ${g.numStages}` });
        }
        for (let j = 0; j < g.branches.length; j++) {
          yield* checkPipeline(g.branches[j], "branch", `${gp}.branches[${j}]`, out, nesting + 1);
          yield;
        }
        break;
      }
      case "dag":
        checkDag(step.kind.value, `${path}.dag`, out);
        break;
      case "wait":
        checkWait(step.kind.value, `${path}.wait`, out);
        break;
      default:
        out.push({ field: path, description: "no step kind set: expected one of task, group, exceptionally, dag, wait" });
    }
  }
  if (p.finally) checkTaskCall(p.finally, at(prefix, "finally"), out);
  p.initialArgs.forEach((v, i) => checkValue(v, at(prefix, `initial_args[${i}]`), out));
  for (const [k, v] of Object.entries(p.initialKwargs)) checkValue(v, at(prefix, `initial_kwargs[${JSON.stringify(k)}]`), out);
  if (p.initialState) checkValue(p.initialState, at(prefix, "initial_state"), out);
}

function checkTaskCall(call: TaskCall, path: string, out: Violation[]): void {
  if (call.task === "") {
    out.push({ field: `${path}.task`, description: "must not be empty: name the task to run" });
  } else if (call.task.length > MAX_NAME_LENGTH || !TASK_NAME.test(call.task)) {
    out.push({
      field: `${path}.task`,
      description: `must be at most ${MAX_NAME_LENGTH} characters of letters, digits and _ . : / - starting with a letter or _, got ${JSON.stringify(call.task.slice(0, 60))}`,
    });
  }
  call.args.forEach((v, i) => checkValue(v, `${path}.args[${i}]`, out));
  for (const [k, v] of Object.entries(call.kwargs)) checkValue(v, `${path}.kwargs[${JSON.stringify(k)}]`, out);
  if (call.options) checkOptions(call.options, `${path}.options`, out);
}

function checkOptions(o: TaskOptions, path: string, out: Violation[]): void {
  if (o.queue.length > MAX_NAME_LENGTH) {
    out.push({ field: `${path}.queue`, description: `must be at most ${MAX_NAME_LENGTH} characters, got ${o.queue.length}` });
  }
  if (QUEUE_NAME_CONTROL.test(o.queue)) out.push({ field: `${path}.queue`, description: "must hold no control characters" });
  if (o.displayName.length > MAX_NAME_LENGTH) {
    out.push({ field: `${path}.display_name`, description: `must be at most ${MAX_NAME_LENGTH} characters, got ${o.displayName.length}` });
  }
  checkDuration(o.waitTimeout, `${path}.wait_timeout`, out);
  checkDuration(o.executionTimeout, `${path}.execution_timeout`, out);
  checkDuration(o.heartbeatTimeout, `${path}.heartbeat_timeout`, out);
  const r = o.retry;
  if (r) {
    if (r.maxAttempts < 0 || r.maxAttempts > MAX_ATTEMPTS_LIMIT) {
      out.push({ field: `${path}.retry.max_attempts`, description: `must be between 0 and ${MAX_ATTEMPTS_LIMIT} (0 = server default), got ${r.maxAttempts}` });
    }
    if (!(r.backoffFactor === 0 || r.backoffFactor >= 1) || !Number.isFinite(r.backoffFactor)) {
      out.push({ field: `${path}.retry.backoff_factor`, description: `must be 0 (default 2.0) or a finite number >= 1, got ${r.backoffFactor}` });
    }
    checkDuration(r.initialDelay, `${path}.retry.initial_delay`, out);
    checkDuration(r.maxDelay, `${path}.retry.max_delay`, out);
    r.retryOn.forEach((t, i) => {
      if (t === "") out.push({ field: `${path}.retry.retry_on[${i}]`, description: "must not be empty: give an error type name" });
    });
  }
}

/** A duration field: non-negative, well-formed, at most ten years. */
export function checkDuration(d: Duration | undefined, path: string, out: Violation[]): void {
  if (!d) return;
  if (d.seconds < 0n || d.nanos < 0 || d.nanos > 999_999_999) {
    out.push({ field: path, description: `must be a non-negative duration, got ${d.seconds}s ${d.nanos}ns` });
  } else if (d.seconds > BigInt(MAX_DURATION_SECONDS)) {
    out.push({ field: path, description: `must be at most ${MAX_DURATION_SECONDS} s (ten years), got ${d.seconds}s` });
  }
}

/** Latest Wait.time accepted: the end of the year 9999 (seconds since the epoch). */
const MAX_WAIT_TIME_SECONDS = 253_402_300_799n;

function checkWait(w: Wait, path: string, out: Violation[]): void {
  const c = w.condition;
  switch (c.case) {
    case "duration":
      checkDuration(c.value, `${path}.duration`, out);
      break;
    case "time":
      if (c.value.seconds < 0n || c.value.seconds > MAX_WAIT_TIME_SECONDS || c.value.nanos < 0 || c.value.nanos > 999_999_999)
        out.push({ field: `${path}.time`, description: `must be a time between 1970 and the year 9999, got ${c.value.seconds}s` });
      break;
    case "signal":
    case "event": {
      const problem = waitNameProblem(c.value);
      if (problem) out.push({ field: `${path}.${c.case}`, description: problem });
      break;
    }
    default:
      out.push({ field: path, description: "no condition set: expected one of duration, time, signal, event" });
  }
  if (w.timeout && (c.case === "duration" || c.case === "time"))
    out.push({ field: `${path}.timeout`, description: "only a signal or event wait takes a timeout" });
  else checkDuration(w.timeout, `${path}.timeout`, out);
  if (w.displayName.length > MAX_NAME_LENGTH)
    out.push({ field: `${path}.display_name`, description: `must be at most ${MAX_NAME_LENGTH} characters, got ${w.displayName.length}` });
}

function checkValue(v: Value, path: string, out: Violation[]): void {
  switch (v.kind.case) {
    case "payload":
      if (v.kind.value.encoding.length > MAX_ENCODING_LENGTH) {
        out.push({ field: `${path}.payload.encoding`, description: `must be at most ${MAX_ENCODING_LENGTH} characters, got ${v.kind.value.encoding.length}` });
      }
      return;
    case "list":
      v.kind.value.items.forEach((item, i) => checkValue(item, `${path}.list.items[${i}]`, out));
      return;
    case "map":
      for (const [k, item] of Object.entries(v.kind.value.entries)) checkValue(item, `${path}.map.entries[${JSON.stringify(k)}]`, out);
      return;
    default:
      return; // an error value or no value (null) are both fine
  }
}

function checkDag(dag: Dag, path: string, out: Violation[]): void {
  if (dag.nodes.length === 0) {
    out.push({ field: `${path}.nodes`, description: "must not be empty, got 0 nodes" });
  }
  const index = new Map<string, number>();
  dag.nodes.forEach((node, i) => {
    const np = `${path}.nodes[${i}]`;
    if (node.id === "") {
      out.push({ field: `${np}.id`, description: "must not be empty" });
    } else if (node.id.length > MAX_NAME_LENGTH) {
      out.push({ field: `${np}.id`, description: `must be at most ${MAX_NAME_LENGTH} characters, got ${node.id.length}` });
    } else if (index.has(node.id)) {
      out.push({ field: `${np}.id`, description: `duplicate id ${JSON.stringify(node.id)}, first used by nodes[${index.get(node.id)}]` });
    } else {
      index.set(node.id, i);
    }
    if (!node.task) out.push({ field: `${np}.task`, description: "must be set: the task this node runs" });
    else checkTaskCall(node.task, `${np}.task`, out);
    if (!KNOWN_PARENT_RESULTS.has(node.parentResults)) {
      out.push({ field: `${np}.parent_results`, description: `unknown enum value ${node.parentResults}, expected one of AUTO (1), ALWAYS (2), NEVER (3)` });
    }
  });
  dag.nodes.forEach((node, i) => {
    const parents = node.parentArguments.length ? new Set(node.dependsOn) : undefined; // includes() per argument was quadratic
    node.parentArguments.forEach((pa, j) => {
      const pp = `${path}.nodes[${i}].parent_arguments[${j}]`;
      const argc = node.task?.args.length ?? 0;
      if (pa.position < 0 || pa.position >= argc) {
        out.push({ field: `${pp}.position`, description: `must index the node's task.args (0 to ${argc - 1}), got ${pa.position}` });
      }
      if (!parents!.has(pa.node)) {
        out.push({
          field: `${pp}.node`,
          description: `must be one of the node's depends_on (${listIds(node.dependsOn) || "none"}), got ${JSON.stringify(pa.node)}`,
        });
      }
    });
    const seen = new Set<string>();
    node.dependsOn.forEach((dep, j) => {
      const dp = `${path}.nodes[${i}].depends_on[${j}]`;
      if (dep === node.id) out.push({ field: dp, description: `node ${JSON.stringify(node.id)} cannot depend on itself` });
      else if (!index.has(dep)) out.push({ field: dp, description: `unknown node ${JSON.stringify(dep)}: no node has that id` });
      else if (seen.has(dep)) out.push({ field: dp, description: `duplicate dependency ${JSON.stringify(dep)}` });
      seen.add(dep);
    });
  });
  for (const cycle of findCycles(dag, index)) {
    const shown = cycle.length > 12 ? [...cycle.slice(0, 10), `… (${cycle.length - 11} more)`, cycle.at(-1)!] : cycle;
    out.push({ field: `${path}.nodes`, description: `dependency cycle: ${shown.map((id) => (id.startsWith("…") ? id : JSON.stringify(id))).join(" -> ")}` });
  }
  dag.outputs.forEach((id, i) => {
    if (!index.has(id)) out.push({ field: `${path}.outputs[${i}]`, description: `unknown node ${JSON.stringify(id)}: no node has that id` });
  });
}

/** A few ids for a message (a node may have 20,000 parents: naming them all in each of 20,000 violations is quadratic). */
function listIds(ids: readonly string[]): string {
  const shown = ids.slice(0, 5).map((d) => JSON.stringify(d.slice(0, 60)));
  return ids.length > 5 ? `${shown.join(", ")} and ${ids.length - 5} more` : shown.join(", ");
}

/** Cycles reported at most; the DFS stops looking after them (each one costs the length of the path). */
const MAX_CYCLES = 10;

/**
 * Cycles (at most MAX_CYCLES), each as the ids along it with the first id
 * repeated at the end. Linear in nodes plus edges: each node's parents are
 * resolved to positions once (recomputing them at every step of the walk
 * made one node with 20,000 parents cost 400 million steps: 11-16 s).
 */
function findCycles(dag: Dag, index: Map<string, number>): string[][] {
  const n = dag.nodes.length;
  // Positions of each node's known parents (itself and unknown ids are reported elsewhere).
  const parents: number[][] = dag.nodes.map((node, k) => {
    const out: number[] = [];
    for (const d of node.dependsOn) {
      const p = index.get(d);
      if (p !== undefined && p !== k && dag.nodes[p].id === d) out.push(p);
    }
    return out;
  });
  const color = new Uint8Array(n); // 0 new, 1 on the current path, 2 done
  const onPath = new Int32Array(n).fill(-1); // where a node sits on the current path
  const path: number[] = [];
  const next: number[] = []; // per path entry: the next parent to look at
  const cycles: string[][] = [];
  // Iterative DFS: a DAG of 100,000 nodes must not overflow the JS stack.
  for (const start of index.values()) {
    if (color[start]) continue;
    color[start] = 1;
    onPath[start] = 0;
    path.push(start);
    next.push(0);
    while (path.length) {
      const top = path.length - 1;
      const node = path[top];
      const ps = parents[node];
      if (next[top] < ps.length) {
        const p = ps[next[top]++];
        if (color[p] === 0) {
          color[p] = 1;
          onPath[p] = path.length;
          path.push(p);
          next.push(0);
        } else if (color[p] === 1 && cycles.length < MAX_CYCLES) {
          cycles.push([...path.slice(onPath[p]), p].map((k) => dag.nodes[k].id));
        }
      } else {
        color[node] = 2;
        onPath[node] = -1;
        path.pop();
        next.pop();
      }
    }
  }
  return cycles;
}

/** Counts the task steps a pipeline holds (finally, DAG nodes and waits included: each is held in memory like a task). */
export function countTasks(p: Pipeline): number {
  let n = p.finally ? 1 : 0;
  for (const step of p.steps) {
    switch (step.kind.case) {
      case "task":
      case "exceptionally":
      case "wait":
        n += 1;
        break;
      case "group":
        for (const b of step.kind.value.branches) n += countTasks(b);
        break;
      case "dag":
        n += step.kind.value.nodes.length;
        break;
    }
  }
  return n;
}
