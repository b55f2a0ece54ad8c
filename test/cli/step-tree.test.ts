// The tree `pipewright get --steps` and `watch` draw: a long list of siblings
// shows a dozen, those failing or at work first, and counts the rest.

import { create } from "@bufbuild/protobuf";
import { StepKind, StepState, StepStatusSchema, type StepStatus } from "@pipewright/protocol";
import { describe, expect, it } from "vitest";
import { StepTree } from "../../server/cli/step-tree.js";

const step = (stepId: number, parentStepId: number, state: StepState, task = `t${stepId}`): StepStatus =>
  create(StepStatusSchema, { stepId, parentStepId, state, task, kind: task === "group" ? StepKind.GROUP : StepKind.TASK, path: `steps[${stepId}]` });

describe("the step tree", () => {
  it("a group of 1,000 branches shows the failed and running ones wherever they are, in their order, and counts the rest by state", () => {
    const branches = Array.from({ length: 1000 }, (_, i) => step(i + 2, 1, i < 990 ? StepState.SUCCEEDED : StepState.QUEUED));
    branches[500].state = StepState.FAILED;
    branches[700].state = StepState.RUNNING;
    branches[995].state = StepState.RUNNING;
    const lines = new StepTree([step(1, 0, StepState.RUNNING, "group"), ...branches]).lines();
    expect(lines[0]).toMatch(/^▶ group running/);
    const shown = lines.slice(1, -1);
    expect(shown).toHaveLength(12);
    expect(shown.slice(0, 3)).toEqual([expect.stringMatching(/^ {2}✓ t2 succeeded/), expect.stringMatching(/^ {2}✓ t3 /), expect.stringMatching(/^ {2}✓ t4 /)]);
    expect(shown.filter((l) => /✗ t502 failed|▶ t702 running|▶ t997 running/.test(l))).toHaveLength(3);
    const ids = shown.map((l) => Number(/ t(\d+) /.exec(l)![1]));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(lines.at(-1)).toBe("  … 988 more: 979 ✓  9 ○");
  });

  it("shows every sibling when there are 13 or fewer (a count line would hide no more than itself)", () => {
    const lines = new StepTree([step(1, 0, StepState.RUNNING, "group"), ...Array.from({ length: 13 }, (_, i) => step(i + 2, 1, StepState.QUEUED))]).lines();
    expect(lines).toHaveLength(14);
    expect(lines.some((l) => l.includes("more"))).toBe(false);
  });
});
