// Cancel and pause/resume at any point of random pipelines, in the core state
// machine: a cancel never crashes the machine, nothing but finally steps is
// dispatched after it, every step ends settled and the run ends CANCELLED; a
// pause followed by a resume does not change the outcome.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { plain } from "../support/outcome-matchers.js";
import { buildPipeline, pipelineSpec, randomTasks } from "../support/random-pipelines.js";
import { simulate } from "../support/simulate-machine.js";

const RUNS = Number(process.env.PIPEWRIGHT_PROPERTY_RUNS ?? 400);

describe("control at any point, on random pipelines", () => {
  it(`a cancel ends every run CANCELLED with every step settled (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(pipelineSpec({ dags: true }), fc.nat(30), async (spec, after) => {
        const proto = buildPipeline(spec).toProto();
        const late: string[] = [];
        const out = await simulate(proto, randomTasks, undefined, [{ after, input: "cancel" }], (d, interruptions) => {
          if (interruptions > 0 && !d.path.endsWith("finally")) late.push(d.path);
        });
        // A run that finished before the cancel keeps its outcome; otherwise it is CANCELLED.
        if (out.runState !== RunState.CANCELLED) return;
        expect(late, "dispatched after the cancel").toEqual([]);
        const unsettled = out.machine.graph.steps.slice(1).filter((s) => s.status === "queued" || s.status === "waiting");
        expect(unsettled.map((s) => out.machine.graph.pathOf(s))).toEqual([]);
        expect(out.ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it(`a pause then a resume does not change the outcome (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(pipelineSpec({ dags: true }), fc.nat(20), fc.nat(5), async (spec, at, length) => {
        const proto = buildPipeline(spec).toProto();
        const local = await runLocally(proto, { tasks: randomTasks, sleep: async () => {} });
        const out = await simulate(proto, randomTasks, undefined, [
          { after: at, input: "pause" },
          { after: at + length, input: "resume" },
        ]);
        const comparable = (o: { ok: boolean; value?: unknown; error?: unknown; state: unknown }) =>
          plain({ ok: o.ok, r: o.ok ? o.value : o.error, s: o.state });
        expect(comparable(out)).toEqual(comparable(local));
      }),
      { numRuns: RUNS },
    );
  });
});
