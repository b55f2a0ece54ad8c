// Size does not break the engine: a 12,000-branch group and 1,000 levels of
// recursion complete on the real server. (How the cost per branch and per
// level stays flat is measured by `npm run bench`, not asserted here.)

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inParallel } from "../../client/pipeline-builder.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import * as t from "../support/test-tasks.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: t.testTasks, slots: 64 });
});
afterAll(() => ts?.stop());

describe("scale", () => {
  // 12,000: the batch writes 5,000 queue rows with its statement and the rest in two
  // pipelined chunks (run-engine writeRemainingRows), so every path of a huge batch runs.
  it("a group of 12,000 branches (num_stages = 1) completes with every result in order", async () => {
    const n = 12_000;
    const p = inParallel(Array.from({ length: n }, (_, i) => ex.multiply.partial(i + 1)))
      .continueWith(ex.sum)
      .withInitial({ args: [2] });
    expect(await ts.client().submitAndWait(p)).toBe(n * (n + 1));
  });

  it("recursion 1,000 levels deep through child pipelines completes", async () => {
    const run = await ts.client().submit(t.deep.send(1000));
    expect(await run.result()).toBe(1000);
    const view = await run.get();
    expect(view.taskCount).toBe(2001); // deep x 1001 and add1 x 1000
  });
});

describe("scale: DAGs", () => {
  it("a random DAG of 5,000 nodes completes with the local runner's result", async () => {
    const { randomDag, randomTasks } = await import("../support/random-pipelines.js");
    const { runLocally } = await import("../../worker-sdk/local-runner.js");
    const w = await ts.worker({ tasks: randomTasks, slots: 64 });
    const p = randomDag(5000, 42);
    const expected = await runLocally(p, { tasks: randomTasks });
    expect(expected.ok).toBe(true);
    expect(await ts.client().submitAndWait(p)).toBe((expected as { value: unknown }).value);
    await w.stop();
  });
});
