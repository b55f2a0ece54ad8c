// The server exports traces only when the OTEL_* environment says so: here to
// a real OTLP/HTTP receiver on loopback (an HTTP server that keeps what it is
// sent), flushed when the server stops.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exporterNames } from "../../server/observe/tracing.js";
import { task } from "../../worker-sdk/task.js";
import { startTestServer } from "../support/test-server.js";

const received: { path: string; type: string; body: Buffer }[] = [];
let receiver: Server;
beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", type: req.headers["content-type"] ?? "", body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
});
afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

describe("which exporters the environment asks for", () => {
  it("none unless configured; an OTLP endpoint implies otlp; none and OTEL_SDK_DISABLED win", () => {
    expect(exporterNames({})).toEqual([]);
    expect(exporterNames({ OTEL_SERVICE_NAME: "x" })).toEqual([]);
    expect(exporterNames({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toEqual(["otlp"]);
    expect(exporterNames({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" })).toEqual(["otlp"]);
    expect(exporterNames({ OTEL_TRACES_EXPORTER: " OTLP, console " })).toEqual(["otlp", "console"]);
    expect(exporterNames({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toEqual([]);
    expect(exporterNames({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" })).toEqual([]);
  });
});

describe("a server with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  it("sends its spans over OTLP/HTTP (protobuf) with the service name, flushed at stop", async () => {
    const echo = task("export.echo", (x: number) => x);
    const { port } = receiver.address() as AddressInfo;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
    process.env.OTEL_SERVICE_NAME = "pipewright-export-test";
    let ts;
    try {
      ts = await startTestServer();
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      delete process.env.OTEL_SERVICE_NAME;
    }
    try {
      await ts.worker({ tasks: [echo], slots: 1 });
      const run = await ts.client().submit(echo.send(5));
      expect(await run.result()).toBe(5);
      expect(received).toEqual([]); // batched: nothing sent yet (OTEL_BSP_SCHEDULE_DELAY is 5 s)
    } finally {
      await ts.stop(); // flushes
    }
    const traces = received.filter((r) => r.path === "/v1/traces");
    expect(traces.length).toBeGreaterThan(0);
    expect(traces[0].type).toBe("application/x-protobuf");
    const body = Buffer.concat(traces.map((t) => t.body)).toString("latin1");
    for (const text of ["pipewright-export-test", "pipewright run", "pipewright attempt export.echo", "pipewright.v1.RunService/SubmitRun"]) {
      expect(body.includes(text), text).toBe(true);
    }
  });
});
