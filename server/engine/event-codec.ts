// How machine inputs are stored in run_events and read back for replay, and
// what a worker's result or an inbox entry is as an input.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SignalRunRequestSchema, TaskResultSchema, type TaskResult } from "@pipewright/protocol";
import type { InboxEntry } from "../store/inbox.js";
import type { Value } from "@pipewright/protocol";
import type { RunInput } from "../core/run-machine.js";
import { noneValue } from "../core/values.js";
import { EventKind, type EventKindCode, type StoredEvent } from "../store/run-events.js";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * The stored form of an input (start is implied by the run row and never
 * stored). A task result may come with its bytes as the worker sent them: a
 * TaskResult, stored as is (its key is ignored on reading).
 */
export function encodeEvent(runId: number, seq: number, input: Exclude<RunInput, { type: "start" }>, raw?: Uint8Array): StoredEvent {
  const at = new Date(input.at);
  switch (input.type) {
    case "taskFinished": {
      const body =
        raw ??
        toBinary(
          TaskResultSchema,
          create(TaskResultSchema, {
            outcome: input.outcome,
            state: input.state,
            startTime: input.startedAt !== undefined ? timestampFromMs(input.startedAt) : undefined,
          }),
        );
      return { runId, seq, kind: EventKind.taskFinished, at, step: input.step, body };
    }
    case "cancel":
      return { runId, seq, kind: EventKind.cancel, at, step: null, body: utf8.encode(input.reason) };
    case "timeout":
      return { runId, seq, kind: EventKind.timeout, at, step: null, body: null };
    case "pause":
      return { runId, seq, kind: EventKind.pause, at, step: null, body: null };
    case "resume":
      return { runId, seq, kind: EventKind.resume, at, step: null, body: null };
    case "wake":
      return { runId, seq, kind: EventKind.wake, at, step: null, body: null };
    case "signal":
    case "event":
      return { runId, seq, kind: EventKind[input.type], at, step: null, body: encodeArrival(input) };
  }
}

/** A signal's or an event's stored body (in run_events, and in run_inbox on its way to the run's owner). */
export function encodeArrival(input: { name: string; payload: Value; id?: string }): Uint8Array {
  return toBinary(SignalRunRequestSchema, create(SignalRunRequestSchema, { name: input.name, payload: input.payload, signalId: input.id ?? "" }));
}

export function decodeArrival(body: Uint8Array | null): { name: string; payload: Value; id?: string } {
  const r = fromBinary(SignalRunRequestSchema, body ?? new Uint8Array());
  return { name: r.name, payload: r.payload ?? noneValue(), id: r.signalId || undefined };
}

export function decodeEvent(e: StoredEvent): Exclude<RunInput, { type: "start" }> {
  const at = e.at.getTime();
  const kind: EventKindCode = e.kind;
  switch (kind) {
    case EventKind.taskFinished: {
      const r = fromBinary(TaskResultSchema, e.body ?? new Uint8Array());
      return { type: "taskFinished", at, step: e.step!, outcome: r.outcome, state: r.state, startedAt: r.startTime ? timestampMs(r.startTime) : undefined };
    }
    case EventKind.cancel:
      return { type: "cancel", at, reason: e.body ? utf8Decoder.decode(e.body) : "" };
    case EventKind.timeout:
      return { type: "timeout", at };
    case EventKind.pause:
      return { type: "pause", at };
    case EventKind.resume:
      return { type: "resume", at };
    case EventKind.wake:
      return { type: "wake", at };
    case EventKind.signal:
    case EventKind.event:
      return { type: kind === EventKind.signal ? "signal" : "event", at, ...decodeArrival(e.body) };
  }
}

/** What an inbox entry other than a result is to the run's machine. */
export function inboxInput(e: InboxEntry, at: number): RunInput | undefined {
  switch (e.kind) {
    case EventKind.cancel:
      return { type: "cancel", at, reason: e.body ? Buffer.from(e.body).toString() : "" };
    case EventKind.pause:
      return { type: "pause", at };
    case EventKind.resume:
      return { type: "resume", at };
    case EventKind.signal:
    case EventKind.event:
      return { type: e.kind === EventKind.signal ? "signal" : "event", at, ...decodeArrival(e.body) };
    default:
      return undefined;
  }
}

/** A worker's result as the input it is to its run's machine. */
export function finishedInput(res: TaskResult, step: number, at: number): RunInput {
  return { type: "taskFinished", at, step, outcome: res.outcome, state: res.state, startedAt: res.startTime ? timestampMs(res.startTime) : undefined };
}
