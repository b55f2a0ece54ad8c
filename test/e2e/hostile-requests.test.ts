// Requests an attacker would send, with no credentials needed: each gets a
// precise status, changes nothing, and leaves the server serving everybody
// else. Bytes are made by hand (test/support/wire.ts): a normal encoder
// cannot even produce most of them.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubmitRunResponseSchema } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { ConnectRequestSchema, HelloSchema } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { inParallel } from "../../client/pipeline-builder.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { healthStatus } from "../support/server-process.js";
import {
  badRequestViolations,
  ld,
  nestedGroups,
  nestedValue,
  pipeline,
  rawStream,
  rawUnary,
  submitRequest,
  taskCall,
  taskStep,
  varint,
  wideGroupPipeline,
} from "../support/wire.js";

const SUBMIT = "/pipewright.v1.RunService/SubmitRun";
const BATCH = "/pipewright.v1.RunService/BatchSubmitRuns";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: ex.allTasks, slots: 8 });
});
afterAll(() => ts?.stop());

async function counts() {
  const [r] = await ts.server.sql<
    { runs: number; queue: number }[]
  >`select (select count(*) from runs)::int as runs, (select count(*) from task_queue)::int as queue`;
  return r;
}

async function refused(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: grpc.ServiceError) => e,
  );
  expect(err, "the call should have been refused").toBeDefined();
  return err!;
}

/** The server still serves: health, and a real pipeline through a real worker. */
async function stillServing(): Promise<void> {
  expect(await healthStatus(ts.address)).toBe("SERVING");
  expect(await ts.client().submitAndWait(ex.multiply.send(6, 7))).toBe(42);
}

describe("memory is bounded by the request, checked before decoding", () => {
  it("a 64 MiB SubmitRun of 7.4 million one-task branches gets RESOURCE_EXHAUSTED naming the task limit, and nothing is decoded", async () => {
    const before = await counts();
    const rssBefore = process.memoryUsage().rss;
    const bytes = submitRequest(wideGroupPipeline(7_400_000));
    expect(bytes.length).toBeLessThan(64 * 1024 * 1024);
    const err = await refused(rawUnary(ts.address, SUBMIT, bytes));
    expect(grpc.status[err.code]).toBe("RESOURCE_EXHAUSTED");
    expect(err.details).toMatch(/more than 500000 tasks.*--max-tasks-per-run/);
    // Decoding it took ~5 GB and killed the server; scanning it takes nothing worth counting.
    const grew = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    expect(grew, `resident memory grew by ${grew.toFixed(0)} MB`).toBeLessThan(800);
    expect(await counts()).toEqual(before);
    await stillServing();
  }, 120_000);

  it("a request with more messages than --max-request-messages is refused before decoding", async () => {
    // 1,000,000 values in one argument list: few tasks, many messages.
    const values = Buffer.concat(Array.from({ length: 1000 }, () => ld(2, nestedValue(1)))); // TaskCall.args, 1,000 at a time
    const call = taskCall("multiply", ...Array.from({ length: 1000 }, () => values));
    const err = await refused(rawUnary(ts.address, SUBMIT, submitRequest(pipeline(taskStep(call)))));
    expect(grpc.status[err.code]).toBe("RESOURCE_EXHAUSTED");
    expect(err.details).toContain("--max-request-messages");
    await stillServing();
  });
});

describe("nesting: the documented limits hold, and past them the error is precise", () => {
  it("groups nested 40 deep (over protobuf's default recursion limit, inside the documented 64) run", async () => {
    const bytes = submitRequest(nestedGroups(40, "multiply"), ld(3, "nested-40")); // SubmitRunRequest.name
    // multiply with no arguments fails on the worker; what matters is that the run was accepted and ran.
    const res = fromBinary(SubmitRunResponseSchema, await rawUnary(ts.address, SUBMIT, bytes));
    const { run } = await ts.client().rpc.waitRun({ runId: res.run!.id, timeout: { seconds: 30n, nanos: 0 } });
    expect(run!.state).toBeGreaterThanOrEqual(RunState.SUCCEEDED);
    expect(run!.taskCount).toBe(1);
  });

  it("groups nested 65 deep are INVALID_ARGUMENT naming the group nesting limit", async () => {
    const err = await refused(rawUnary(ts.address, SUBMIT, submitRequest(nestedGroups(65))));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain("groups nest at most 64 levels deep");
    expect(err.details).toMatch(/^invalid request: 1 violation: pipeline\.steps\[0\]\.group\.branches\[0\]\.steps\[0\]\..*….*\.steps\[0\]\.group: groups nest/);
  });

  it("10,000 levels of nesting are INVALID_ARGUMENT, not a crash or INTERNAL", async () => {
    const err = await refused(rawUnary(ts.address, SUBMIT, submitRequest(nestedGroups(10_000))));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toMatch(/groups nest at most 64 levels deep|nest more than 1000 levels/);
    await stillServing();
  });

  it("an argument nested 48 deep is accepted and reaches the task; one nested 300 deep is INVALID_ARGUMENT", async () => {
    const ok = submitRequest(pipeline(taskStep(taskCall("multiply", ld(2, nestedValue(48)), ld(2, nestedValue(1))))));
    const res = fromBinary(SubmitRunResponseSchema, await rawUnary(ts.address, SUBMIT, ok));
    expect(res.run!.id).toMatch(/-/);
    const err = await refused(rawUnary(ts.address, SUBMIT, submitRequest(pipeline(taskStep(taskCall("multiply", ld(2, nestedValue(300))))))));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain("pipeline.steps[0].task.args[0]");
    expect(err.details).toContain("values (lists, maps, errors) nest at most 256 levels deep");
  });
});

describe("text PostgreSQL cannot store is refused at the edge, and fails alone", () => {
  it("a NUL in a run name, request id, queue or task name is INVALID_ARGUMENT naming the field; 100 other clients' submits at the same moment all succeed", async () => {
    const before = await counts();
    const queueOption = ld(4, ld(2, "q\0ueue")); // TaskCall.options{queue}
    const bad = [
      submitRequest(pipeline(taskStep(taskCall("multiply"))), ld(3, "name\0")),
      submitRequest(pipeline(taskStep(taskCall("multiply"))), ld(1, "req\0id")),
      submitRequest(pipeline(taskStep(taskCall("multiply", queueOption)))),
      submitRequest(pipeline(taskStep(taskCall("mul\0tiply")))),
    ];
    const fields = ["name", "request_id", "pipeline.steps[0].task.options.queue", "pipeline.steps[0].task.task"];
    const client = ts.client();
    const good = Array.from({ length: 100 }, (_, i) => client.submit(ex.multiply.send(i, 2)).then((r) => r.result()));
    const errors = await Promise.all(bad.map((b) => refused(rawUnary(ts.address, SUBMIT, b))));
    errors.forEach((err, i) => {
      expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toContain(`${fields[i]}: must not contain the character U+0000`);
      expect(badRequestViolations(err).map((v) => v.field)).toEqual([fields[i]]);
    });
    expect(await Promise.all(good)).toEqual(Array.from({ length: 100 }, (_, i) => i * 2));
    expect((await counts()).runs).toBe(before.runs + 100);
  });

  it("a worker announcing a queue with a NUL is refused, and dispatch to the other workers goes on", async () => {
    const stream = rawStream(ts.address, "/pipewright.v1.WorkerService/Connect");
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
    stream.on("error", () => {});
    stream.on("data", () => {});
    stream.write(
      Buffer.from(
        toBinary(
          ConnectRequestSchema,
          create(ConnectRequestSchema, {
            kind: { case: "hello", value: create(HelloSchema, { protocolVersion: 1, taskNames: ["multiply"], slots: 1, queues: ["bad\0queue"] }) },
          }),
        ),
      ),
    );
    const s = await status;
    expect(grpc.status[s.code]).toBe("INVALID_ARGUMENT");
    expect(s.details).toContain("hello.queues[0]: must not contain the character U+0000");
    stream.client.close();
    await stillServing();
  });
});

describe("errors that reach the client", () => {
  it("1,000 violations: INVALID_ARGUMENT with a short message and the list in google.rpc.BadRequest; the connection keeps working", async () => {
    const branches = Array.from({ length: 1000 }, (_, i) => (i % 2 ? ex.multiply.send(1, 1) : ex.multiply.send(1, 2)));
    const proto = inParallel(branches).toProto();
    const group = proto.steps[0].kind;
    if (group.case !== "group") throw new Error("expected a group");
    for (const b of group.value.branches) if (b.steps[0].kind.case === "task") b.steps[0].kind.value.task = "bad name";
    const client = ts.client();
    const err = await refused(client.rpc.submitRun({ pipeline: proto }));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toMatch(/^invalid request: 1000 violations: pipeline\.steps\[0\]\.group\.branches\[0\]\.steps\[0\]\.task\.task: .*; and \d+ more$/);
    const listed = badRequestViolations(err);
    expect(listed.length).toBeGreaterThan(20);
    expect(listed[0].field).toBe("pipeline.steps[0].group.branches[0].steps[0].task.task");
    // The same connection still answers.
    expect(await client.submitAndWait(ex.multiply.send(2, 3))).toBe(6);
  });

  it("200,000 violations do not overflow the stack: INVALID_ARGUMENT", async () => {
    // 200,000 branches, each a pipeline with no steps.
    const empty = ld(1, Buffer.alloc(0));
    const body = Buffer.concat(Array.from({ length: 200_000 }, () => empty));
    const group = Buffer.concat([Buffer.from([0x12]), varint(body.length), body]);
    const err = await refused(rawUnary(ts.address, SUBMIT, submitRequest(pipeline(group))));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain("200000 violations");
    await stillServing();
  });

  it("garbage bytes to any method are INVALID_ARGUMENT (malformed), never INTERNAL", async () => {
    for (const method of ["RunService/SubmitRun", "RunService/GetRun", "RunService/ListRuns", "RunService/CancelRun", "AdminService/GetServerStatus"]) {
      const err = await refused(rawUnary(ts.address, `/pipewright.v1.${method}`, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01])));
      expect(grpc.status[err.code], method).toBe("INVALID_ARGUMENT");
      expect(err.details).toContain("malformed");
    }
  });

  it("a page token that is well-formed base64 but holds a bad cursor is INVALID_ARGUMENT", async () => {
    const client = ts.client();
    for (const cursor of [["2020-01-01T00:00:00Z", 1e30], ["2020-01-01T00:00:00Z", -5], ["2020-01-01T00:00:00Z", 1.5], ["99999-01-01", 3], "x"]) {
      const pageToken = Buffer.from(JSON.stringify(cursor)).toString("base64url");
      const err = await refused(client.rpc.listRuns({ pageToken }));
      expect(grpc.status[err.code], JSON.stringify(cursor)).toBe("INVALID_ARGUMENT");
      expect(err.details).toContain("page_token");
    }
    const err = await refused(client.rpc.listRuns({ states: [40_000 as RunState] }));
    expect(grpc.status[err.code]).toBe("INVALID_ARGUMENT");
    expect(err.details).toContain("states[0]");
  });
});
