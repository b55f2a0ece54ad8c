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
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mismatchesAgainstLocal } from "../support/compare-with-local.js";
import { buildPipeline, pipelineSpec, randomTasks, type PipelineSpec } from "../support/random-pipelines.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const RUNS = Math.max(200, Number(process.env.PIPEWRIGHT_PROPERTY_RUNS ?? 200));
const SEED = Number(process.env.PIPEWRIGHT_PROPERTY_SEED ?? Date.now() % 2 ** 31);

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
});
