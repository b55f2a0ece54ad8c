// The adversarial suite: every method of every service, and the worker
// stream, fed what an attacker would send, made by fast-check from the
// message schemas (test/support/proto-fuzz.ts): random well-formed messages,
// messages nested thousands deep, truncated, bit-flipped and garbage bytes,
// one over the message limit, and hostile worker results for real attempts.
// The server runs as its own process (as in production; its event loop is
// its own). After the cases: every answer had a precise status (never
// INTERNAL or UNKNOWN, a message of bounded size), the server is SERVING and
// runs a real pipeline, the database holds no half-written run, every run
// the cases created ends when cancelled, and the longest event-loop stall is
// reported (.test-results/adversarial.json).

import { mkdirSync, writeFileSync } from "node:fs";
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { AdminService } from "../../proto/gen/pipewright/v1/admin_service_pb.js";
import { EventService } from "../../proto/gen/pipewright/v1/event_service_pb.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { RunService } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { ScheduleService } from "../../proto/gen/pipewright/v1/schedule_service_pb.js";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  HelloSchema,
  TaskResultSchema,
  TaskResultsSchema,
} from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import { createClient } from "../../proto/runtime/grpc-client.js";
import * as ex from "../../examples/tasks.js";
import { Worker } from "../../worker-sdk/worker.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { killProcess } from "../support/fault-harness.js";
import { fuzzBytes, type FuzzKind } from "../support/proto-fuzz.js";
import { healthStatus, spawnServer, type ServerProcess } from "../support/server-process.js";
import { until } from "../support/until.js";
import { rawStream, rawUnary } from "../support/wire.js";

const SEED = Number(process.env.PIPEWRIGHT_FUZZ_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.PIPEWRIGHT_FUZZ_RUNS ?? 60);
const KINDS: FuzzKind[] = ["random", "random", "deep", "truncated", "flipped", "garbage"];
/** Statuses a bad request may get. INTERNAL, UNKNOWN and UNAVAILABLE (the database is up) are bugs. */
const PRECISE = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ALREADY_EXISTS,
]);
/** Waits and watches may run into the test's own deadline. */
const WAITING = new Set(["WaitRun", "WaitRuns", "WatchRun"]);

let db: TestDatabase;
let server: ServerProcess;
let worker: Worker;
const answers = new Map<string, number>(); // "Method STATUS" -> count
const imprecise: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await spawnServer(["--address", "127.0.0.1:0", "--database-url", db.url, "--heartbeat-interval-ms", "1000", "--drain-grace-ms", "1000"]);
  worker = new Worker({ address: server.address, tasks: ex.allTasks, slots: 8 });
  await worker.start();
}, 120_000);

afterAll(async () => {
  await worker?.stop().catch(() => {});
  if (server) {
    server.child.kill("SIGTERM");
    await Promise.race([server.exited, new Promise((r) => setTimeout(r, 15_000))]);
    await killProcess(server.child);
  }
  await db?.drop();
});

interface Answer {
  code: grpc.status;
  details: string;
}

/** One call with raw request bytes, unary or server-streaming; resolves with the status it ended with. */
async function call(service: DescService, method: string, bytes: Uint8Array): Promise<Answer> {
  const m = service.methods.find((x) => x.name === method)!;
  const path = `/${service.typeName}/${method}`;
  if (m.methodKind === "unary") {
    return rawUnary(server.address, path, bytes, 10_000).then(
      () => ({ code: grpc.status.OK, details: "" }),
      (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
    );
  }
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  const identity = (b: Buffer) => b;
  const stream = client.makeServerStreamRequest(path, identity, identity, Buffer.from(bytes), new grpc.Metadata(), { deadline: Date.now() + 10_000 });
  stream.on("data", () => {});
  stream.on("error", () => {});
  const status = await new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
  client.close();
  return { code: status.code, details: status.details };
}

function judge(method: string, kind: string, a: Answer): void {
  const key = `${method} ${grpc.status[a.code]}`;
  answers.set(key, (answers.get(key) ?? 0) + 1);
  const precise =
    PRECISE.has(a.code) || (WAITING.has(method) && a.code === grpc.status.DEADLINE_EXCEEDED) || (method === "Connect" && a.code === grpc.status.CANCELLED); // the fuzzer ended its stream first
  if (!precise || a.details.length > 4096) imprecise.push(`${method} (${kind}): ${grpc.status[a.code]} ${a.details.slice(0, 300)}`);
}

const services: [DescService, string[]][] = [
  [RunService, RunService.methods.map((m) => m.name)],
  [AdminService, AdminService.methods.map((m) => m.name)],
  [ScheduleService, ScheduleService.methods.map((m) => m.name)],
  [EventService, EventService.methods.map((m) => m.name)],
];

describe(`adversarial suite (seed ${SEED}; PIPEWRIGHT_FUZZ_SEED replays it)`, () => {
  for (const [service, methods] of services) {
    for (const method of methods) {
      it(`${service.name}.${method}: every fuzzed request gets a precise status`, async () => {
        const input = service.methods.find((m) => m.name === method)!.input as DescMessage;
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...KINDS), fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (kind, seed) => {
            const bytes = fuzzBytes(input, kind, seed, { maxDepth: kind === "deep" ? 300 + (seed % 3000) : 3, maxRepeat: 50 });
            judge(method, kind, await call(service, method, bytes));
          }),
          { numRuns: RUNS, seed: SEED },
        );
        expect(imprecise).toEqual([]);
      }, 120_000);
    }
  }

  it("a request over the 64 MiB message limit is RESOURCE_EXHAUSTED", async () => {
    const a = await call(RunService, "SubmitRun", new Uint8Array(64 * 1024 * 1024 + 10));
    expect(grpc.status[a.code]).toBe("RESOURCE_EXHAUSTED");
  });

  it("the worker stream: fuzzed hellos and messages end the stream with a precise status; hostile results for real attempts end their runs", async () => {
    const client = new PipewrightClient(server.address);
    // Real attempts the hostile worker will answer: a task only it serves.
    const runs = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.rpc.submitRun({ pipeline: { steps: [{ kind: { case: "task", value: { task: "fuzz_task", args: [] } } }] }, name: `fuzz-${i}` }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(...KINDS), async (seed, kind) => {
        const stream = rawStream(server.address, "/pipewright.v1.WorkerService/Connect");
        const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
        const keys: { runId: string; stepId: number; attempt: number }[] = [];
        stream.on("data", (b: Buffer) => {
          const m = fromBinary(ConnectResponseSchema, b);
          if (m.kind.case === "assignments") for (const t of m.kind.value.tasks) keys.push(t.key!);
        });
        stream.on("error", () => {});
        const good = seed % 2 === 0; // half the sessions start with a valid hello, to reach real attempts
        stream.write(
          Buffer.from(
            good
              ? toBinary(
                  ConnectRequestSchema,
                  create(ConnectRequestSchema, {
                    kind: { case: "hello", value: create(HelloSchema, { protocolVersion: 1, taskNames: ["fuzz_task"], slots: 5 }) },
                  }),
                )
              : fuzzBytes(ConnectRequestSchema, kind, seed, { maxDepth: 500, maxRepeat: 20 }),
          ),
        );
        await new Promise((r) => setTimeout(r, 50));
        for (let i = 0; i < 3; i++) {
          // A fuzzed result for a real attempt when there is one: its outcome, state and key are hostile.
          const key = keys.shift();
          const body = fuzzBytes(TaskResultSchema, kind, seed + i, { maxDepth: kind === "deep" ? 400 : 3, maxRepeat: 20 });
          // The real key last: a repeated singular field's last occurrence wins.
          const result = key ? concat(body, toBinary(TaskResultSchema, create(TaskResultSchema, { key }))) : body;
          const message = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { kind: { case: "results", value: create(TaskResultsSchema, {}) } }));
          stream.write(
            Buffer.from(key ? wrapResults(result) : i === 0 ? message : fuzzBytes(ConnectRequestSchema, kind, seed + 7 * i, { maxDepth: 300, maxRepeat: 20 })),
          );
        }
        await new Promise((r) => setTimeout(r, 30));
        stream.end();
        const s = await Promise.race([
          status,
          new Promise<grpc.StatusObject>((r) =>
            setTimeout(() => r({ code: grpc.status.DEADLINE_EXCEEDED, details: "no status", metadata: new grpc.Metadata() }), 10_000),
          ),
        ]);
        stream.client.close();
        judge("Connect", kind, s);
      }),
      { numRuns: RUNS * 2, seed: SEED },
    );
    expect(imprecise).toEqual([]);
    // Every run the hostile worker touched, or that waits for it, ends once cancelled.
    for (const r of runs) await client.rpc.cancelRun({ runId: r.run!.id }).catch(() => {});
    await until(
      "every fuzz run ended",
      async () => {
        const states = await Promise.all(runs.map((r) => client.rpc.getRun({ runId: r.run!.id }).then((x) => x.run!.state)));
        return states.every((s) => s >= RunState.SUCCEEDED);
      },
      30_000,
    );
    client.close();
  }, 180_000);

  it("afterwards: SERVING, a real pipeline runs, no half-written run, every run ends when cancelled, no stack traces logged", async () => {
    expect(await healthStatus(server.address)).toBe("SERVING");
    const client = new PipewrightClient(server.address);
    expect(await client.submitAndWait(ex.multiply.send(6, 7).continueWith(ex.add, 0))).toBe(42);
    // Runs the fuzzed submits created (random task names no worker serves) end when cancelled.
    const ids: string[] = [];
    for (let token = "", first = true; first || token; first = false) {
      const page = await client.rpc.listRuns({ states: [RunState.RUNNING, RunState.PAUSED], pageSize: 1000, pageToken: token });
      ids.push(...page.runs.map((r) => r.id));
      token = page.nextPageToken;
    }
    for (const id of ids) await client.rpc.cancelRun({ runId: id }).catch(() => {});
    await until(
      "every active run ended after its cancel",
      async () => {
        const page = await client.rpc.listRuns({ states: [RunState.RUNNING, RunState.PAUSED, RunState.CANCELLING], pageSize: 1 });
        return page.runs.length === 0;
      },
      60_000,
    );
    // The database holds no half-written run: queue rows only for active runs, events only for runs.
    const { default: postgres } = await import("postgres");
    const pg = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const [c] = await pg<{ orphan_rows: number; orphan_events: number; active: number; unfinished: number }[]>`
        select (select count(*) from task_queue q join runs r on r.id = q.run_id where r.state > 3)::int as orphan_rows,
               (select count(*) from run_events e where not exists (select 1 from runs r where r.id = e.run_id))::int as orphan_events,
               (select count(*) from runs where state <= 3)::int as active,
               (select count(*) from runs where state > 3 and (finished_at is null or outcome is null))::int as unfinished`;
      expect(c).toEqual({ orphan_rows: 0, orphan_events: 0, active: 0, unfinished: 0 });
    } finally {
      await pg.end();
    }
    const admin = createClient(AdminService, server.address);
    const status = await admin.getServerStatus({});
    admin.close();
    const maxDelayMs = Number(status.eventLoopMaxDelay?.seconds ?? 0n) * 1000 + (status.eventLoopMaxDelay?.nanos ?? 0) / 1e6;
    // No stack trace per bad request in the log (cheap log flooding): none in a JSON line's
    // `err`, none on lines of its own.
    const stackLines = server
      .output()
      .split("\n")
      .filter((l) => /^\s+at /.test(l) || /"err":\{[^}]*"stack":/.test(l)).length;
    const report = {
      seed: SEED,
      runsPerMethod: RUNS,
      answers: Object.fromEntries([...answers].sort()),
      eventLoopMaxDelayMs: maxDelayMs,
      busyRefusals: Number(status.busyRefusals),
      stackLines,
    };
    console.log("adversarial suite:", JSON.stringify(report));
    mkdirSync(".test-results", { recursive: true });
    writeFileSync(".test-results/adversarial.json", JSON.stringify(report, null, 2));
    expect(stackLines).toBe(0);
    // The goal is tens of milliseconds (22 ms when this was written); the bound only catches
    // a stall of another order on a shared, noisy machine.
    expect(maxDelayMs).toBeLessThan(500);
    client.close();
  }, 120_000);
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** ConnectRequest{results: TaskResults{results: [result]}} around raw result bytes. */
function wrapResults(result: Uint8Array): Uint8Array {
  const inner = concat(Uint8Array.from([0x0a, ...varint(result.length)]), result);
  return concat(Uint8Array.from([0x12, ...varint(inner.length)]), inner);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}
