// Differential property test against the real server: random pipelines
// (nesting, groups with limits and stages, state, exceptionally, finally,
// child pipelines, retries, tasks failing by a seeded rule) give the same
// outcome and final state on the server (real PostgreSQL, real workers over
// gRPC) as on the local runner.
//
// The cases are generated with fast-check from one seed and submitted all at
// once (the server runs them concurrently); a mismatch prints the seed, the
// case and both outcomes. Reproduce with PIPEWRIGHT_PROPERTY_SEED=<seed>;
// run more with PIPEWRIGHT_PROPERTY_RUNS=<n>. In-process shrinking of the same
// generator lives in test/core/differential-core.test.ts.

import fc from "fast-check";
import { RunState, RunView, StepState } from "@pipewright/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mismatchesAgainstLocal } from "../support/compare-with-local.js";
import { buildPipeline, pipelineSpec, randomTasks, type Arrivals, type PipelineSpec } from "../support/random-pipelines.js";
import { VirtualClock } from "../../worker-sdk/virtual-clock.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const RUNS = Math.max(200, Number(process.env.PIPEWRIGHT_PROPERTY_RUNS ?? 200));
const SEED = Number(process.env.PIPEWRIGHT_PROPERTY_SEED ?? Date.now() % 2 ** 31);
/** Pipelines with waits: their sleeps and timeouts take real time (tens of ms to a second each). */
const WAIT_RUNS = 60;

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: randomTasks, slots: 32 });
  await ts.worker({ tasks: randomTasks, slots: 32 });
});
afterAll(() => ts?.stop());

export async function differential(server: TestServer, specs: PipelineSpec[], seed: number): Promise<void> {
  const client = server.client();
  const pipelines = specs.map((s) => buildPipeline(s));
  const handles = [];
  for (let i = 0; i < pipelines.length; i += 100) handles.push(...(await client.submitMany(pipelines.slice(i, i + 100))));
  const runs = await Promise.all(handles.map((h) => h.wait(120_000)));
  const mismatches = await mismatchesAgainstLocal(runs, pipelines, (i) => `case ${i}: ${JSON.stringify(specs[i])}`);
  expect(
    mismatches,
    `seed ${seed}: ${mismatches.length} of ${specs.length} cases differ (reproduce with PIPEWRIGHT_PROPERTY_SEED=${seed})\n${mismatches.slice(0, 3).join("\n")}`,
  ).toEqual([]);
}

describe("server = local runner on random pipelines", () => {
  it(`agrees on ${RUNS} random pipelines (seed ${SEED})`, async () => {
    await differential(ts, fc.sample(pipelineSpec({ dags: true }), { numRuns: RUNS, seed: SEED }), SEED);
  });

  it(`agrees on ${WAIT_RUNS} random pipelines with sleeps, signals and timed-out waits (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const specs = fc.sample(pipelineSpec({ dags: true, waits: true }), { numRuns: WAIT_RUNS, seed: SEED });
    const arrivals: Arrivals[] = specs.map(() => ({ signals: [] }));
    const pipelines = specs.map((s, i) => buildPipeline(s, true, arrivals[i]));
    const client = ts.client();
    const handles = await client.submitMany(pipelines);
    // Each run's signals, sent once it is submitted: kept by the server until its waits are reached (the local
    // runner gets them before its first step). A run that finished first (its waits skipped) refuses them.
    const sent = await Promise.race([
      Promise.all(
        handles.map(async (h, i) => {
          for (const s of arrivals[i].signals)
            await h.signal(s.name, s.payload, { signalId: s.id }).catch((e) => expect(String(e)).toMatch(/FAILED_PRECONDITION/));
        }),
      ).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 30_000)),
    ]);
    expect(sent, "every signal answered within 30 s").toBe(true);
    const runs = await Promise.all(handles.map((h) => h.wait(40_000)));
    // A run not finished by then: its steps say where it stands (what it waits for, and until when).
    const stuck = await Promise.all(
      runs
        .filter((r) => r.state < RunState.SUCCEEDED)
        .map(async (r) =>
          JSON.stringify({
            run: r.id,
            state: RunState[r.state],
            steps: (await client.rpc.getRun({ runId: r.id, view: RunView.FULL }))
              .run!.steps.filter((st) => st.state !== StepState.SUCCEEDED && st.state !== StepState.SKIPPED && st.state !== StepState.PENDING)
              .map((st) => [st.path, StepState[st.state], st.waitingFor, st.wakeTime ? Number(st.wakeTime.seconds) * 1000 - Date.now() : null]),
          }),
        ),
    );
    expect(stuck, `seed ${SEED}: runs not finished after 40 s`).toEqual([]);
    const mismatches = await mismatchesAgainstLocal(
      runs,
      pipelines,
      (i) => `case ${i}: ${JSON.stringify(specs[i])}`,
      (i) => ({ clock: new VirtualClock(0), signals: arrivals[i].signals }),
    );
    expect(mismatches, `seed ${SEED}: ${mismatches.length} of ${specs.length} cases differ\n${mismatches.slice(0, 3).join("\n")}`).toEqual([]);
  });
});
