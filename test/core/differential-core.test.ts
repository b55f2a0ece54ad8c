// Differential property test, in process: random pipelines through the core
// state machine and through the local runner give the same outcome and final
// state. Cheap enough for many cases and for fast-check's shrinking; the
// end-to-end version (test/e2e/differential.test.ts) does the same against
// the real server.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { plain } from "../support/outcome-matchers.js";
import { buildPipeline, pipelineSpec, randomTasks, type Arrivals } from "../support/random-pipelines.js";
import { VirtualClock } from "../../worker-sdk/virtual-clock.js";
import { simulate } from "../support/simulate-machine.js";

const RUNS = Number(process.env.PIPEWRIGHT_PROPERTY_RUNS ?? 500);
const SEED = process.env.PIPEWRIGHT_PROPERTY_SEED ? Number(process.env.PIPEWRIGHT_PROPERTY_SEED) : undefined;

const comparable = (o: { ok: boolean; value?: unknown; error?: unknown; state: unknown }) =>
  plain({ ok: o.ok, result: o.ok ? o.value : o.error, state: o.state });

describe("core state machine = local runner on random pipelines", () => {
  it(`agrees on ${RUNS} random pipelines with sleeps, signals and timed-out waits`, async () => {
    await fc.assert(
      fc.asyncProperty(pipelineSpec({ dags: true, waits: true }), async (spec) => {
        const arrivals: Arrivals = { signals: [] };
        const proto = buildPipeline(spec, true, arrivals).toProto();
        const local = await runLocally(proto, { tasks: randomTasks, clock: new VirtualClock(0), signals: arrivals.signals });
        const core = await simulate(proto, randomTasks, undefined, [], undefined, arrivals.signals);
        expect(comparable(core)).toEqual(comparable(local));
      }),
      { numRuns: RUNS, seed: SEED, verbose: 1 },
    );
  });

  it(`agrees on ${RUNS} random pipelines`, async () => {
    await fc.assert(
      fc.asyncProperty(pipelineSpec({ dags: true }), async (spec) => {
        const proto = buildPipeline(spec).toProto();
        const local = await runLocally(proto, { tasks: randomTasks, sleep: async () => {} });
        const core = await simulate(proto, randomTasks);
        expect(comparable(core)).toEqual(comparable(local));
      }),
      { numRuns: RUNS, seed: SEED, verbose: 1 },
    );
  });
});
