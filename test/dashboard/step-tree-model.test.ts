// The dashboard's step tree model (dashboard/src/run/step-tree-model.ts): pure functions, no
// browser. What the browser test cannot pin down case by case: the order of live and logged
// step events, a branch's state from its steps, and branches found by their paths.

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { branchesOf, branchState, mergeStep, stepLabel } from "../../dashboard/src/run/step-tree-model.js";
import { StepKind, StepState, StepStatusSchema, type StepStatus } from "../../proto/gen/pipewright/v1/run_pb.js";
import { ValueSchema } from "../../proto/gen/pipewright/v1/value_pb.js";

const step = (stepId: number, path: string, state: StepState, attempts = 0): StepStatus =>
  create(StepStatusSchema, { stepId, path, state, attempts, kind: StepKind.TASK, task: "t" });

describe("mergeStep", () => {
  it("keeps RUNNING when the older logged QUEUED event arrives after the live RUNNING one", () => {
    const running = step(1, "steps[1]", StepState.RUNNING, 1);
    expect(mergeStep(running, step(1, "steps[1]", StepState.QUEUED, 0)).state).toBe(StepState.RUNNING);
  });

  it("keeps SUCCEEDED when a watch's snapshot of running steps arrives after it", () => {
    const done = step(1, "steps[0]", StepState.SUCCEEDED, 1);
    expect(mergeStep(done, step(1, "steps[0]", StepState.RUNNING, 1)).state).toBe(StepState.SUCCEEDED);
  });

  it("takes a retry's QUEUED (same attempts) and the next attempt's RUNNING", () => {
    const failedFirst = mergeStep(step(1, "steps[0]", StepState.RUNNING, 1), step(1, "steps[0]", StepState.QUEUED, 1));
    expect(failedFirst.state).toBe(StepState.QUEUED);
    expect(mergeStep(failedFirst, step(1, "steps[0]", StepState.RUNNING, 2)).state).toBe(StepState.RUNNING);
  });

  it("keeps the known progress when a RUNNING event has none", () => {
    const known = step(1, "steps[0]", StepState.RUNNING, 1);
    known.progress = create(ValueSchema, { kind: { case: "payload", value: { data: new TextEncoder().encode("0.5") } } });
    expect(mergeStep(known, step(1, "steps[0]", StepState.RUNNING, 1)).progress).toBe(known.progress);
  });
});

describe("branchesOf and branchState", () => {
  it("splits a group's children by the branch in their paths, in branch order", () => {
    const children = [
      step(3, "steps[0].group.branches[1].steps[0]", StepState.SUCCEEDED, 1),
      step(2, "steps[0].group.branches[0].steps[0]", StepState.SUCCEEDED, 1),
      step(4, "steps[0].group.branches[1].steps[1]", StepState.PENDING),
      step(5, "steps[0].group.branches[10].steps[0]", StepState.FAILED, 1),
    ];
    expect(branchesOf(children).map((b) => [b.index, b.steps.map((s) => s.stepId)])).toEqual([
      [0, [2]],
      [1, [3, 4]],
      [10, [5]],
    ]);
  });

  it("gives a branch the state that matters: failed first, then at work, then how it ended", () => {
    const of = (...states: StepState[]) => branchState({ index: 0, steps: states.map((s, i) => step(i, `b.steps[${i}]`, s)) });
    expect(of(StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED)).toBe(StepState.FAILED);
    expect(of(StepState.SUCCEEDED, StepState.QUEUED)).toBe(StepState.QUEUED);
    expect(of(StepState.SUCCEEDED, StepState.PENDING)).toBe(StepState.RUNNING); // between two steps
    expect(of(StepState.SUCCEEDED, StepState.SKIPPED)).toBe(StepState.SUCCEEDED);
    expect(of(StepState.PENDING, StepState.PENDING)).toBe(StepState.PENDING);
    expect(of(StepState.SKIPPED)).toBe(StepState.SKIPPED);
  });
});

describe("stepLabel", () => {
  it("names a DAG node by its id and task, and the nodes it waits for", () => {
    const node = (dagNodeId: string, dagDependsOn: string[]) =>
      create(StepStatusSchema, { stepId: 3, path: "steps[0].dag.nodes[1]", kind: StepKind.DAG_NODE, task: "echo", dagNodeId, dagDependsOn });
    expect(stepLabel(node("load", []))).toBe("load: echo");
    expect(stepLabel(node("report", ["load", "clean"]))).toBe("report: echo ← load, clean");
  });
});
