// No server: a client fails with one clear error (not 27 lines of grpc-js),
// and a worker says it cannot reach the server while it retries.

import { describe, expect, it } from "vitest";
import { PipewrightClient, ServerUnavailableError, taskRef } from "@pipewright/client";
import { task, Worker } from "@pipewright/worker";
import { until } from "../support/until.js";

describe("no server", () => {
  it("a client's call fails with ServerUnavailableError: a clear message, the gRPC code, a stack in the caller's code", async () => {
    const client = new PipewrightClient("127.0.0.1:1");
    const err = (await client.submit(taskRef<[number], number>("x").send(1)).catch((e) => e)) as ServerUnavailableError;
    client.close();
    expect(err).toBeInstanceOf(ServerUnavailableError);
    expect(err.message).toBe("cannot reach the Pipewright server at 127.0.0.1:1 (ECONNREFUSED)");
    expect(err.code).toBe(14);
    expect(err.stack).not.toMatch(/grpc-js/);
    expect(err.stack!.split("\n").length).toBeLessThan(12);
  });

  it("a worker says it cannot reach the server, and keeps trying", async () => {
    const lines: string[] = [];
    const worker = new Worker({ address: "127.0.0.1:1", tasks: [task("t", () => 1)], log: (l) => lines.push(l), reconnectDelayMs: { initial: 20, max: 50 } });
    void worker.start().catch(() => {});
    await until("the worker said so", () => lines.length > 0, 5000);
    expect(lines[0]).toMatch(/^cannot reach the Pipewright server at 127\.0\.0\.1:1: .*; retrying$/);
    expect(worker.state).toBe("running");
    await worker.stop();
  });
});
