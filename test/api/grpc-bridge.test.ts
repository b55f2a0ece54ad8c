// The protobuf-es <-> grpc-js bridge, health and reflection, against a real grpc-js server.
import { execFile } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { implement, serviceDefinition } from "../../proto/runtime/grpc-bridge.js";
import { createClient, type Client } from "../../proto/runtime/grpc-client.js";
import { GetRunResponseSchema, RunService, WatchRunResponseSchema } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import type { GetRunResponse, WatchRunResponse } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import type { ConnectRequest, ConnectResponse } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { RunEventSchema, RunSchema, RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { ConnectRequestSchema, ConnectResponseSchema, WorkerService } from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { createHealth, healthDefinition, healthFileDescriptor, ServingStatus, type HealthCheckResponse } from "../../server/api/health.js";
import { addReflection } from "../../server/api/reflection.js";

const run = promisify(execFile);

/** An error carrying its gRPC status, as the server code would throw. */
class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}
class ValidationError extends Error {}

const event = (runId: string, seq: number) => create(WatchRunResponseSchema, { event: create(RunEventSchema, { runId, seq: BigInt(seq) }) });

let server: grpc.Server;
let address: string;
let runs: Client<typeof RunService>;
let workers: Client<typeof WorkerService>;
const health = createHealth({ "": "NOT_SERVING" });
/** Resolves when the server's WatchRun call for run "slow" sees 'cancelled'. */
let slowCancelled: Promise<void>;
let onSlowCancelled: () => void;

beforeAll(async () => {
  slowCancelled = new Promise((resolve) => (onSlowCancelled = resolve));
  server = new grpc.Server();
  const runImpl = implement(
    RunService,
    {
      async getRun(req) {
        const createTime = timestampFromDate(new Date("2024-01-02T03:04:05Z"));
        return create(GetRunResponseSchema, { run: create(RunSchema, { id: req.runId, state: RunState.RUNNING, createTime }) });
      },
      async submitRun() {
        throw new ValidationError("pipeline.steps must not be empty");
      },
      async watchRun(req, call) {
        if (req.runId === "slow") {
          call.on("cancelled", () => onSlowCancelled());
          for (let seq = 1; !call.cancelled; seq++) {
            call.write(event(req.runId, seq));
            await sleep(10);
          }
          return;
        }
        for (let seq = 1; seq <= 3; seq++) call.write(event(req.runId, seq));
        if (req.runId === "missing") throw new StatusError(grpc.status.NOT_FOUND, "run missing was deleted");
      },
    },
    (err) => {
      if (err instanceof ValidationError) {
        const metadata = new grpc.Metadata();
        metadata.set("x-error-kind", "validation");
        return { code: grpc.status.INVALID_ARGUMENT, details: err.message, metadata };
      }
      if (err instanceof StatusError) return { code: err.code, details: err.details };
      return { code: grpc.status.INTERNAL, details: "internal error" };
    },
  );
  server.addService(serviceDefinition(RunService), runImpl);
  server.addService(
    serviceDefinition(WorkerService),
    implement(
      WorkerService,
      {
        async connect(call) {
          for await (const req of call) {
            if (req.kind.case !== "hello") continue;
            if (req.kind.value.workerName === "bad") throw new StatusError(grpc.status.FAILED_PRECONDITION, "bad worker");
            call.write(create(ConnectResponseSchema, { kind: { case: "welcome", value: { workerId: `w-${req.kind.value.workerName}` } } }));
          }
        },
      },
      (err) => (err instanceof StatusError ? err : { code: grpc.status.INTERNAL, details: String(err) }),
    ),
  );
  server.addService(health.definition, health.implementation);
  addReflection(server, [RunService, WorkerService], [healthFileDescriptor]);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
  runs = createClient(RunService, address);
  workers = createClient(WorkerService, address);
});

afterAll(async () => {
  runs?.close();
  workers?.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

describe("typed client and handlers", () => {
  it("derives precise types from the descriptors", () => {
    expectTypeOf(runs.getRun).returns.resolves.toEqualTypeOf<GetRunResponse>();
    expectTypeOf(runs.watchRun).returns.toEqualTypeOf<AsyncIterable<WatchRunResponse>>();
    expectTypeOf(workers.connect).returns.toEqualTypeOf<grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>>();
    // @ts-expect-error: not a field of GetRunRequest
    expectTypeOf(() => runs.getRun({ nope: 1 })).toBeFunction();
  });

  it("answers a unary call", async () => {
    const res = await runs.getRun({ runId: "r1" });
    expect(res.run?.id).toBe("r1");
    expect(res.run?.state).toBe(RunState.RUNNING);
  });

  it("rejects a unary call with the mapped ServiceError", async () => {
    const err = await runs.submitRun({ name: "x" }).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "pipeline.steps must not be empty" });
    expect((err as grpc.ServiceError).metadata.get("x-error-kind")).toEqual(["validation"]);
  });

  it("answers UNIMPLEMENTED for methods left out", async () => {
    await expect(runs.cancelRun({ runId: "r1" })).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  });

  it("streams a server stream to its end", async () => {
    const seqs: bigint[] = [];
    for await (const res of runs.watchRun({ runId: "r1" })) seqs.push(res.event!.seq);
    expect(seqs).toEqual([1n, 2n, 3n]);
  });

  it("throws the ServiceError of a stream that fails mid-way", async () => {
    const seqs: bigint[] = [];
    const err = await (async () => {
      for await (const res of runs.watchRun({ runId: "missing" })) seqs.push(res.event!.seq);
    })().catch((e: grpc.ServiceError) => e);
    expect(seqs).toEqual([1n, 2n, 3n]);
    expect(err).toMatchObject({ code: grpc.status.NOT_FOUND, details: "run missing was deleted" });
  });

  it("cancels the call when the consumer leaves a for await early", async () => {
    let n = 0;
    for await (const _ of runs.watchRun({ runId: "slow" })) if (++n === 2) break;
    await expect(Promise.race([slowCancelled.then(() => "cancelled"), sleep(2000, "timeout")])).resolves.toBe("cancelled");
  });

  it("cancels a server stream when the signal aborts", async () => {
    const ac = new AbortController();
    const err = await (async () => {
      for await (const _ of runs.watchRun({ runId: "slow" }, { signal: ac.signal })) ac.abort();
    })().catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.CANCELLED });
  });

  it("honours a deadline on unary calls", async () => {
    await expect(runs.getRun({ runId: "r1" }, { deadline: Date.now() - 1 })).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
  });
});

describe("bidi streaming", () => {
  it("round-trips Hello / Welcome and ends cleanly", async () => {
    const call = workers.connect();
    call.on("error", () => {});
    const status = once(call, "status");
    call.write(create(ConnectRequestSchema, { kind: { case: "hello", value: { workerName: "a", slots: 4 } } }));
    const [res] = (await once(call, "data")) as [ConnectResponse];
    expect(res.kind).toMatchObject({ case: "welcome", value: { workerId: "w-a" } });
    call.end();
    const [st] = (await status) as [grpc.StatusObject];
    expect(st.code).toBe(grpc.status.OK);
  });

  it("reports a rejected bidi handler as the stream's error status", async () => {
    const call = workers.connect();
    const error = once(call, "error");
    call.write(create(ConnectRequestSchema, { kind: { case: "hello", value: { workerName: "bad" } } }));
    const [err] = (await error) as [grpc.ServiceError];
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: "bad worker" });
  });
});

describe("reflection (buf curl)", () => {
  const buf = ["node_modules/.bin/buf", ["curl", "--protocol", "grpc", "--http2-prior-knowledge"]] as const;

  it("lists the services' methods", { timeout: 30_000 }, async () => {
    const { stdout } = await run(buf[0], [...buf[1], "--list-methods", `http://${address}`]);
    const methods = stdout.split("\n");
    expect(methods).toContain("pipewright.v1.RunService/SubmitRun");
    expect(methods).toContain("pipewright.v1.RunService/WatchRun");
    expect(methods).toContain("pipewright.v1.WorkerService/Connect");
    expect(methods).toContain("grpc.health.v1.Health/Check");
    expect(methods).toContain("grpc.health.v1.Health/Watch");
  });

  it("calls GetRun with JSON through the reflected descriptors", { timeout: 30_000 }, async () => {
    const { stdout } = await run(buf[0], [...buf[1], "-d", '{"runId":"x"}', `http://${address}/pipewright.v1.RunService/GetRun`]);
    expect(JSON.parse(stdout)).toEqual({ run: { id: "x", state: "RUN_STATE_RUNNING", createTime: "2024-01-02T03:04:05Z" } });
  });

  it("calls Health/Check with JSON through the hand-built descriptor", { timeout: 30_000 }, async () => {
    health.setStatus("reflection-probe", "SERVING");
    const { stdout } = await run(buf[0], [...buf[1], "-d", '{"service":"reflection-probe"}', `http://${address}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });
});

describe("health", () => {
  type HealthClient = grpc.Client & Record<"Check" | "Watch", (...args: unknown[]) => any>;
  let client: HealthClient;
  beforeAll(() => {
    const Ctor = grpc.makeGenericClientConstructor(healthDefinition, "Health");
    client = new Ctor(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
  });
  afterAll(() => client.close());

  const check = (service: string) =>
    new Promise<HealthCheckResponse>((resolve, reject) =>
      client.Check({ service }, (err: grpc.ServiceError | null, res: HealthCheckResponse) => (err ? reject(err) : resolve(res))),
    );

  it("answers Check with the status set", async () => {
    expect(await check("")).toEqual({ status: ServingStatus.NOT_SERVING });
    health.setStatus("", "SERVING");
    expect(await check("")).toEqual({ status: ServingStatus.SERVING });
  });

  it("answers NOT_FOUND for an unknown service", async () => {
    await expect(check("no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("streams changes to watchers and ends them on shutdown", async () => {
    const call: grpc.ClientReadableStream<HealthCheckResponse> = client.Watch({ service: "pipewright.v1.RunService" });
    call.on("error", () => {});
    const seen: ServingStatus[] = [];
    const ended = once(call, "status");
    call.on("data", (res: HealthCheckResponse) => {
      seen.push(res.status);
      if (seen.length === 1) health.setStatus("pipewright.v1.RunService", "SERVING");
      if (seen.length === 2) health.shutdown();
    });
    const [st] = (await ended) as [grpc.StatusObject];
    expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(st.code).toBe(grpc.status.OK);
    expect(await check("")).toEqual({ status: ServingStatus.NOT_SERVING });
    health.setStatus("", "SERVING"); // ignored after shutdown
    expect(await check("")).toEqual({ status: ServingStatus.NOT_SERVING });
  });
});
