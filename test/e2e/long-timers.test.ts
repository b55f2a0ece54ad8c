// Timeouts longer than Node's setTimeout takes (2^31-1 ms, 24.8 days) wait as
// long as they say: a 30-day run timeout used to fire at once.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { nap } from "../support/test-tasks.js";

const DAY = 24 * 3600_000;

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [nap], slots: 2 });
});
afterAll(() => ts?.stop());

describe("long timeouts", () => {
  it("a run with a 30-day run timeout runs to its end", async () => {
    const run = await ts.client().submit(nap.send(300), { runTimeoutMs: 30 * DAY });
    expect(await run.result()).toBe(300);
  });

  it("a task with a 30-day execution timeout and a 30-day heartbeat timeout is not stopped", async () => {
    const run = await ts.client().submit(nap.withOptions({ executionTimeoutMs: 30 * DAY, heartbeatTimeoutMs: 30 * DAY }).send(300));
    expect(await run.result()).toBe(300);
  });

  it("durations past ten years are INVALID_ARGUMENT naming the field", async () => {
    const err = (await ts
      .client()
      .submit(nap.send(1), { runTimeoutMs: 20 * 365 * DAY })
      .catch((e) => e)) as grpc.ServiceError;
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain("run_timeout: must be at most");
  });
});
