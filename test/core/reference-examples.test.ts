// The examples of the reference document, run through the core state machine
// (in process) and through the local runner: both must give the documented values.

import { describe, expect, it } from "vitest";
import { inParallel } from "../../client/pipeline-builder.js";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { simulate } from "../support/simulate-machine.js";
import * as t from "../../examples/tasks.js";

const cases = {
  continuation: [t.multiply.send(3, 2).continueWith(t.divide, 2), 3],
  "fan-in-average": [inParallel([t.multiply.send(3, 2), t.multiply.send(4, 5)]).continueWith(t.average), 13],
  nested: [
    inParallel([
      t.multiply.send(3, 2).continueWith(t.divide, 2),
      inParallel([t.multiply.send(4, 5), t.multiply.send(3, 4)]).continueWith(t.average),
    ]).continueWith(t.average),
    9.5,
  ],
  state: [t.multiplyWithState.send(3, 2).continueWith(t.subtract, 1).continueWith(t.addState), 15],
  composition: [t.multiplyAndSubtract.send(3, 2, 1), 5],
  conditional: [t.addPositive.send(-3, 2), 1],
  recursion: [t.countTo.send(0, 100), 100],
  exceptionally: [t.fail.send("boom").exceptionally(t.handleError, 42), 42],
} as const;

describe("reference examples", () => {
  for (const [name, [pipeline, expected]] of Object.entries(cases)) {
    it(`${name} gives ${expected} in the core and in the local runner`, async () => {
      const proto = pipeline.toProto();
      const local = await runLocally(proto, { tasks: t.allTasks });
      const core = await simulate(proto, t.allTasks);
      expect(local).toMatchObject({ ok: true, value: expected });
      expect({ ok: core.ok, value: core.ok ? core.value : core.error, state: core.state }).toEqual({ ok: local.ok, value: expected, state: local.state });
    });
  }

  it("with-initial: 10,000 branches in 10 stages sum to 100010000", async () => {
    const branches = Array.from({ length: 10_000 }, (_, i) => t.multiply.partial(i + 1));
    const proto = inParallel(branches, { numStages: 10 })
      .continueWith(t.sum)
      .withInitial({ args: [2] })
      .toProto();
    const core = await simulate(proto, t.allTasks);
    expect(core).toMatchObject({ ok: true, value: 100010000 });
    const local = await runLocally(proto, { tasks: t.allTasks });
    expect(local).toMatchObject({ ok: true, value: 100010000 });
  });

  it("finally runs after a failure, keeps the error and sees the state", async () => {
    const proto = t.fail
      .send("bad")
      .finallyDo(t.cleanup)
      .withInitial({ state: { n: 1 } })
      .toProto();
    const core = await simulate(proto, t.allTasks);
    const local = await runLocally(proto, { tasks: t.allTasks });
    expect(core.ok).toBe(false);
    expect(core.state).toEqual({ n: 1, cleaned: true });
    const { machine: _machine, ...outcome } = core; // the outcome as JSON (the machine refers to itself through its step drivers)
    expect(JSON.parse(JSON.stringify(outcome))).toMatchObject({ ok: false, error: { type: "ValueError", message: "bad", origin: "steps[0]" } });
    expect(local.ok || core.ok).toBe(false);
    if (!local.ok && !core.ok) expect(local.error.toJSON()).toEqual(core.error.toJSON());
  });
});
