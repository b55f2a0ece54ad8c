// Runs as deep as the limits allow finish without growing the call stack:
// thousands of nested child pipelines unwinding at once, cancelled, or failing.

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PipelineSchema, StepSchema, TaskCallSchema, type Pipeline } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { PayloadSchema, TaskErrorSchema, ValueSchema } from "../../proto/gen/pipewright/v1/value_pb.js";
import { DEFAULT_MACHINE_CONFIG, RunMachine, type Effect } from "../../server/core/run-machine.js";

const DEPTH = 9_000; // the documented --max-depth default is 10,000; recursion overflowed near 1,600

const call = (task: string) => create(StepSchema, { kind: { case: "task", value: create(TaskCallSchema, { task }) } });
/** A pipeline of one task, with a finally step when asked (unwinding then runs it at every level). */
const child = (withFinally: boolean): Pipeline =>
  create(PipelineSchema, { steps: [call("nest")], finally: withFinally ? create(TaskCallSchema, { task: "cleanup" }) : undefined });
const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? [e.dispatch] : []));

/** Starts a run and lets each task return a child pipeline until `depth` levels are open; returns the machine and the innermost task's step. */
function nestDeep(depth: number, withFinally = false): { machine: RunMachine; innermost: number } {
  const machine = new RunMachine(child(false), { ...DEFAULT_MACHINE_CONFIG, maxDepth: depth + 10 });
  let [d] = dispatched(machine.apply({ type: "start", at: 0 }));
  for (let level = 1; level <= depth; level++) {
    [d] = dispatched(machine.apply({ type: "taskFinished", at: level, step: d.step, outcome: { case: "pipeline", value: child(withFinally) } }));
  }
  return { machine, innermost: d.step };
}

describe("deep child pipelines", () => {
  it(`a result at the bottom of ${DEPTH} nested child pipelines finishes the run with it`, () => {
    const { machine, innermost } = nestDeep(DEPTH);
    const value = create(ValueSchema, { kind: { case: "payload", value: create(PayloadSchema, { data: new TextEncoder().encode("42") }) } });
    const effects = machine.apply({ type: "taskFinished", at: DEPTH + 1, step: innermost, outcome: { case: "value", value } });
    const finished = effects.find((e) => e.type === "finished");
    expect(finished).toMatchObject({ state: RunState.SUCCEEDED, outcome: { value } });
    expect(machine.status).toBe("finished");
  });

  it(`an error at the bottom of ${DEPTH} levels fails the run with that error`, () => {
    const { machine, innermost } = nestDeep(DEPTH);
    const error = create(TaskErrorSchema, { type: "Boom", message: "deep down" });
    machine.apply({ type: "taskFinished", at: DEPTH + 1, step: innermost, outcome: { case: "error", value: error } });
    expect(machine.result?.state).toBe(RunState.FAILED);
    expect("error" in machine.result!.outcome && machine.result!.outcome.error.message).toBe("deep down");
  });

  it(`cancelling ${DEPTH} open levels ends the run cancelled at once`, () => {
    const { machine } = nestDeep(DEPTH);
    const effects = machine.apply({ type: "cancel", at: DEPTH + 1, reason: "test" });
    expect(effects.filter((e) => e.type === "cancelTask")).toHaveLength(1);
    expect(machine.result?.state).toBe(RunState.CANCELLED);
  });

  it(`cancelling 3,000 open levels ends the run cancelled, every level's finally step then runs in turn`, () => {
    const levels = 3_000;
    const { machine } = nestDeep(levels, true);
    let effects = machine.apply({ type: "cancel", at: levels + 1, reason: "test" });
    expect(effects.some((e) => e.type === "cancelTask")).toBe(true);
    // Each level's finally step runs once the level below has unwound.
    let finallies = 0;
    for (let d = dispatched(effects)[0]; d; d = dispatched(effects)[0]) {
      expect(d.call.task).toBe("cleanup");
      finallies++;
      effects = machine.apply({ type: "taskFinished", at: levels + 2 + finallies, step: d.step, outcome: { case: "value", value: create(ValueSchema, {}) } });
    }
    expect(finallies).toBe(levels);
    expect(machine.result?.state).toBe(RunState.CANCELLED);
  });
});

describe("the full view of a huge run", () => {
  it("lists steps within its budget, errors past a share of it compact, and says it was cut", async () => {
    const { stepStatuses } = await import("../../server/core/step-statuses.js");
    const branches = Array.from({ length: 2_000 }, () => create(PipelineSchema, { steps: [call("fails")] }));
    const machine = new RunMachine(create(PipelineSchema, { steps: [create(StepSchema, { kind: { case: "group", value: { branches } } })] }));
    const long = "m".repeat(4_000);
    for (const d of dispatched(machine.apply({ type: "start", at: 0 }))) {
      machine.apply({
        type: "taskFinished",
        at: 1,
        step: d.step,
        outcome: { case: "error", value: create(TaskErrorSchema, { type: "E", message: long, stack: long }) },
      });
    }
    const all = stepStatuses(machine.graph, { running: new Set() }, Infinity);
    expect(all.truncated).toBe(false);
    expect(all.steps).toHaveLength(2_001);
    const cut = stepStatuses(machine.graph, { running: new Set() }, 1_000_000);
    expect(cut.truncated).toBe(true);
    expect(cut.steps.length).toBeLessThan(2_001);
    expect(cut.steps.length).toBeGreaterThan(100);
  });
});
