// Validation is linear in the pipeline's size: inputs shaped to hit every
// per-node loop of the DAG checks. A valid 0.8 MB DAG (one node depending on
// 20,000 others) used to take 11-16 s, blocking the server's event loop.
// The bound below is loose on purpose (shared 2-core machines vary 2.5x):
// it tells linear from quadratic, it does not measure speed.

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  DagNodeSchema,
  DagSchema,
  ParentArgumentSchema,
  PipelineSchema,
  StepSchema,
  TaskCallSchema,
  type Pipeline,
} from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { ValueSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { validatePipeline } from "../../proto/runtime/validate-pipeline.js";

const N = 20_000;
const call = (args = 0) => create(TaskCallSchema, { task: "t", args: Array.from({ length: args }, () => create(ValueSchema, {})) });
const dag = (nodes: ReturnType<typeof create<typeof DagNodeSchema>>[]): Pipeline =>
  create(PipelineSchema, { steps: [create(StepSchema, { kind: { case: "dag", value: create(DagSchema, { nodes }) } })] });

function timed(p: Pipeline): { ms: number; violations: number } {
  const started = performance.now();
  const violations = validatePipeline(p).length;
  return { ms: performance.now() - started, violations };
}

describe("validation stays linear", () => {
  it(`one node depending on ${N} others`, () => {
    const parents = Array.from({ length: N }, (_, i) => create(DagNodeSchema, { id: `n${i}`, task: call() }));
    const sink = create(DagNodeSchema, { id: "sink", task: call(), dependsOn: parents.map((p) => p.id) });
    const { ms, violations } = timed(dag([...parents, sink]));
    expect(violations).toBe(0);
    expect(ms).toBeLessThan(2000);
  });

  it(`${N} parent_arguments naming nodes the node does not depend on`, () => {
    const parents = Array.from({ length: N }, (_, i) => create(DagNodeSchema, { id: `n${i}`, task: call() }));
    const sink = create(DagNodeSchema, {
      id: "sink",
      task: call(1),
      dependsOn: parents.map((p) => p.id),
      parentArguments: Array.from({ length: N }, (_, i) => create(ParentArgumentSchema, { position: 0, node: `missing${i}` })),
    });
    const { ms, violations } = timed(dag([...parents, sink]));
    expect(violations).toBe(N);
    expect(ms).toBeLessThan(2000);
  });

  it(`a cycle through ${N} nodes, and ${N} back edges`, () => {
    // n0 <- n1 <- ... <- n(N-1) <- n0, and every node also depends on n(N-1).
    const nodes = Array.from({ length: N }, (_, i) =>
      create(DagNodeSchema, { id: `n${i}`, task: call(), dependsOn: [`n${(i + 1) % N}`, ...(i < N - 2 ? [`n${N - 1}`] : [])] }),
    );
    const { ms, violations } = timed(dag(nodes));
    expect(violations).toBeGreaterThan(0);
    expect(violations).toBeLessThanOrEqual(10);
    expect(ms).toBeLessThan(2000);
  });
});
