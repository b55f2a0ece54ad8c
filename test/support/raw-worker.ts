// A worker speaking the protocol by hand (no SDK), to play the misbehaving
// worker: one that never heartbeats a task, goes silent, or drops its stream.

import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import {
  ConnectRequestSchema,
  HeartbeatSchema,
  HelloSchema,
  TaskResultSchema,
  TaskResultsSchema,
  WorkerService,
  type ConnectRequest,
  type ConnectResponse,
  type TaskAssignment,
  type TaskKey,
} from "../../proto/gen/pipewright/v1/worker_service_pb.js";
import type { TaskError, Value } from "../../proto/gen/pipewright/v1/value_pb.js";
import { createClient } from "../../proto/runtime/grpc-client.js";

export class RawWorker {
  readonly assignments: TaskAssignment[] = [];
  readonly cancels: TaskKey[] = [];
  private readonly client;
  private readonly stream: grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
  private waiters: (() => void)[] = [];
  ended = false;

  constructor(address: string, tasks: string[], slots = 1, queues: string[] = []) {
    this.client = createClient(WorkerService, address);
    this.stream = this.client.connect();
    this.stream.on("data", (m: ConnectResponse) => {
      if (m.kind.case === "assignments") this.assignments.push(...m.kind.value.tasks);
      if (m.kind.case === "cancel") this.cancels.push(...m.kind.value.keys);
      for (const w of this.waiters.splice(0)) w();
    });
    this.stream.on("error", () => (this.ended = true));
    this.stream.on("end", () => (this.ended = true));
    this.stream.write(
      create(ConnectRequestSchema, { kind: { case: "hello", value: create(HelloSchema, { protocolVersion: 1, taskNames: tasks, slots, queues }) } }),
    );
  }

  /** Resolves once `n` assignments arrived. */
  async waitForAssignments(n: number, timeoutMs = 10_000): Promise<TaskAssignment[]> {
    const until = Date.now() + timeoutMs;
    while (this.assignments.length < n) {
      if (Date.now() > until) throw new Error(`only ${this.assignments.length} of ${n} assignments arrived`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.assignments.slice(0, n);
  }

  /** Sends a heartbeat listing these attempts (none: just "alive"). */
  heartbeat(keys: TaskKey[] = []): void {
    this.stream.write(create(ConnectRequestSchema, { kind: { case: "heartbeat", value: create(HeartbeatSchema, { running: keys.map((key) => ({ key })) }) } }));
  }

  result(key: TaskKey, value: Value): void {
    this.stream.write(
      create(ConnectRequestSchema, {
        kind: { case: "results", value: create(TaskResultsSchema, { results: [create(TaskResultSchema, { key, outcome: { case: "value", value } })] }) },
      }),
    );
  }

  /** Reports a failure, with an error as given (a worker in another language may send anything). */
  fail(key: TaskKey, error: TaskError): void {
    this.stream.write(
      create(ConnectRequestSchema, {
        kind: { case: "results", value: create(TaskResultsSchema, { results: [create(TaskResultSchema, { key, outcome: { case: "error", value: error } })] }) },
      }),
    );
  }

  /** Breaks the stream without a word, as a crashed worker would. */
  drop(): void {
    this.stream.on("error", () => {});
    this.stream.cancel();
    this.client.close();
  }
}
