// Which controls a run accepts in which state: the one table (server/core/run-control.ts),
// and the run machine agreeing with it. The engine, a process forwarding a control and
// the owner applying its inbox all ask the same table (test/e2e/control.test.ts and
// multi-process.test.ts exercise those paths end to end).

import { encodeValue, RunState } from "@pipewright/protocol";
import { describe, expect, it } from "vitest";
import { taskRef } from "../../client/task-ref.js";
import { controlRefusal, type RunControl } from "../../server/core/run-control.js";
import { RunMachine, type Effect } from "../../server/core/run-machine.js";

const ACTIONS: RunControl[] = ["cancel", "pause", "resume", "timeout", "signal", "wake"];

// Written out here, independently of the table: [state, action, accepted, or the refusal].
const EXPECTED: [RunState, RunControl, true | string][] = [
  [RunState.RUNNING, "cancel", true],
  [RunState.RUNNING, "pause", true],
  [RunState.RUNNING, "resume", "run r1 is not paused"],
  [RunState.RUNNING, "timeout", true],
  [RunState.RUNNING, "signal", true],
  [RunState.RUNNING, "wake", true],
  [RunState.PAUSED, "cancel", true],
  [RunState.PAUSED, "pause", "run r1 is already paused"],
  [RunState.PAUSED, "resume", true],
  [RunState.PAUSED, "timeout", true],
  [RunState.PAUSED, "signal", true],
  [RunState.PAUSED, "wake", true],
  [RunState.CANCELLING, "cancel", true],
  [RunState.CANCELLING, "pause", "run r1 is being cancelled, it cannot be paused"],
  [RunState.CANCELLING, "resume", "run r1 is being cancelled, it cannot be resumed"],
  [RunState.CANCELLING, "timeout", true],
  [RunState.CANCELLING, "signal", "run r1 is being cancelled: no wait step can take a signal any more"],
  [RunState.CANCELLING, "wake", true],
  ...[RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED].flatMap((s) =>
    ACTIONS.map((a): [RunState, RunControl, string] => [
      s,
      a,
      a === "signal" ? "run r1 has already finished: a signal can no longer reach it" : "run r1 has already finished",
    ]),
  ),
];

/** A machine of `a(1)` then finally `f()`, brought to `state`. */
function machineIn(state: RunState): RunMachine {
  const m = new RunMachine(taskRef<[n: number], number>("a").send(1).finallyDo(taskRef("f")).toProto());
  const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? [e.dispatch.step] : []));
  const [a] = dispatched(m.apply({ type: "start", at: 1 }));
  if (state === RunState.PAUSED) m.apply({ type: "pause", at: 2 });
  if (state === RunState.CANCELLING) m.apply({ type: "cancel", at: 2, reason: "" }); // the finally step now runs
  if (state === RunState.SUCCEEDED) {
    const [f] = dispatched(m.apply({ type: "taskFinished", at: 2, step: a, outcome: { case: "value", value: encodeValue(1) } }));
    m.apply({ type: "taskFinished", at: 3, step: f, outcome: { case: "value", value: encodeValue(null) } });
  }
  expect(m.runState).toBe(state);
  return m;
}

describe("run controls", () => {
  it.each(EXPECTED.map(([state, action, expected]) => [RunState[state], action, expected, state] as const))(
    "a run %s: %s is %s",
    (_name, action, expected, state) => {
      expect(controlRefusal(state, action, "r1") ?? true).toBe(expected);
    },
  );

  it.each([RunState.RUNNING, RunState.PAUSED, RunState.CANCELLING, RunState.SUCCEEDED].map((s) => [RunState[s], s] as const))(
    "the run machine %s does what the table says for pause and resume, and nothing when it refuses",
    (_name, state) => {
      for (const action of ["pause", "resume"] as const) {
        const m = machineIn(state);
        const effects = m.apply({ type: action, at: 10 });
        if (controlRefusal(state, action, "r1") === undefined) {
          expect(m.runState, action).toBe(action === "pause" ? RunState.PAUSED : RunState.RUNNING);
          expect(
            effects.some((e) => e.type === "holdQueued"),
            action,
          ).toBe(true);
        } else {
          expect(m.runState, action).toBe(state);
          expect(effects, action).toEqual([]);
        }
      }
    },
  );

  it("a cancel accepted while cancelling changes nothing (the run is stopping already)", () => {
    const m = machineIn(RunState.CANCELLING);
    expect(m.apply({ type: "cancel", at: 10, reason: "again" })).toEqual([]);
    expect(m.apply({ type: "timeout", at: 11 })).toEqual([]);
    expect(m.runState).toBe(RunState.CANCELLING);
  });
});
