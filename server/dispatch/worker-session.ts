// One worker's session: its stream, what it serves, its slots and the
// attempts it holds. Lifecycle: ACTIVE (assignable) -> DRAINING (the worker
// or the server asked it to take nothing new) -> CLOSED (stream ended).

import { DEFAULT_NAMESPACE } from "@pipewright/protocol";
import { queueKey, queueLabel } from "@pipewright/protocol";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { MAX_PACKED_MESSAGE_BYTES } from "@pipewright/protocol";
import type { Value } from "@pipewright/protocol";
import type { TaskSeries } from "../observe/metrics.js";
import {
  CancelTasksSchema,
  ConnectResponseSchema,
  TaskAssignmentsSchema,
  TaskKeySchema,
  type ConnectRequest,
  type ConnectResponse,
  type Hello,
  type TaskAssignment,
} from "@pipewright/protocol";

export interface HeldAttempt {
  runId: number;
  runUid: string;
  step: number;
  attempt: number;
  task: string;
  deliveredAt: number;
  /** Last time a heartbeat mentioned it (or its delivery). */
  lastHeartbeat: number;
  /** Fails with pipewright.Timeout if still running this long after delivery. */
  executionMs?: number;
  /** Fails with pipewright.Timeout if no heartbeat mentions it for this long. */
  heartbeatMs?: number;
  /** Timed out: failed by the server, its late result will be dropped. */
  expired?: boolean;
  /** The latest progress the worker reported for it (heartbeats). */
  progress?: Value;
  /** Where its end is counted (metrics of its task and queue). */
  series: TaskSeries;
}

export type SessionState = "active" | "draining" | "closed";

export class WorkerSession {
  state: SessionState = "active";
  readonly tasks: ReadonlySet<string>;
  readonly queues: ReadonlySet<string>;
  readonly slots: number;
  /** Attempts the worker holds, by `${runUid}/${step}`. */
  readonly held = new Map<string, HeldAttempt>();
  /** Slots promised to attempts being committed (the fast path). */
  reserved = 0;
  readonly connectedAt = Date.now();
  lastSeen = Date.now();
  lastLeaseRenewal = 0;
  private outbox: { assignment: TaskAssignment; size: number }[] = [];
  private flushScheduled = false;

  constructor(
    readonly id: string,
    readonly hello: Hello,
    private readonly call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>,
    /** The namespace it connected in: its queues are that namespace's (core/queue-keys.ts). */
    readonly namespace: string = DEFAULT_NAMESPACE,
  ) {
    this.tasks = new Set(hello.taskNames);
    this.queues = new Set((hello.queues.length ? hello.queues : [""]).map((q) => queueKey(namespace, q)));
    this.slots = hello.slots;
  }

  get free(): number {
    return this.state === "active" ? this.slots - this.held.size - this.reserved : 0;
  }

  serves(task: string, queue: string): boolean {
    return this.tasks.has(task) && this.queues.has(queue);
  }

  /**
   * Queues an assignment (`size`: about its bytes); those queued in the same
   * tick go out together, in messages of at most MAX_PACKED_MESSAGE_BYTES
   * (an assignment bigger than that goes alone).
   */
  assign(a: HeldAttempt, assignment: TaskAssignment, size: number): void {
    this.held.set(`${a.runUid}/${a.step}`, a);
    assignment.key = create(TaskKeySchema, { runId: a.runUid, stepId: a.step, attempt: a.attempt });
    this.outbox.push({ assignment, size });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.outbox;
    this.outbox = [];
    let tasks: TaskAssignment[] = [];
    let bytes = 0;
    const send = () => {
      if (tasks.length) this.write(create(ConnectResponseSchema, { kind: { case: "assignments", value: create(TaskAssignmentsSchema, { tasks }) } }));
      tasks = [];
      bytes = 0;
    };
    for (const { assignment, size } of queued) {
      if (tasks.length && bytes + size > MAX_PACKED_MESSAGE_BYTES) send();
      tasks.push(assignment);
      bytes += size;
    }
    send();
  }

  /** Ends the session from the server's side: the worker sees UNAVAILABLE and connects again. */
  end(details = "the server ended this session; connect again"): void {
    if (this.state === "closed" || this.call.cancelled || this.call.writableEnded) return;
    this.call.emit("error", Object.assign(new Error(details), { code: grpc.status.UNAVAILABLE, details }));
  }

  cancel(attempts: HeldAttempt[], reason: string): void {
    const keys = attempts.map((a) => create(TaskKeySchema, { runId: a.runUid, stepId: a.step, attempt: a.attempt }));
    this.write(create(ConnectResponseSchema, { kind: { case: "cancel", value: create(CancelTasksSchema, { keys, reason }) } }));
  }

  write(message: ConnectResponse): void {
    if (this.state === "closed") return;
    this.call.write(message);
  }
}

/** A session's queues as people name them ("default", "team-a/email"), for log lines. */
export function queueNames(session: WorkerSession): string[] {
  return [...session.queues].map(queueLabel);
}
