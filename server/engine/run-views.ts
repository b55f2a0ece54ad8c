// Building the public Run and RunEvent messages, from a run in memory or
// from its rows.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  OutcomeSchema,
  RunEventSchema,
  RunSchema,
  RunState,
  RunStateChangedSchema,
  type Outcome,
  type Run,
  type RunEvent,
  type StepStatus,
} from "@pipewright/protocol";
import { ValueSchema, type Value } from "@pipewright/protocol";
import type { Effect, RunMachine } from "../core/run-machine.js";
import { stepStatusOf } from "../core/step-statuses.js";
import type { RunRow } from "../store/run-store.js";

export interface RunIdentity {
  uid: string;
  namespace: string;
  startAt: number;
  requestId: string;
  name: string;
  createdAt: number;
}

export function outcomeMessage(outcome: Extract<Effect, { type: "finished" }>["outcome"]): Outcome {
  return create(OutcomeSchema, { kind: "error" in outcome ? { case: "error", value: outcome.error } : { case: "value", value: outcome.value } });
}

export function encodeOutcome(outcome: Extract<Effect, { type: "finished" }>["outcome"]): Uint8Array {
  return toBinary(OutcomeSchema, outcomeMessage(outcome));
}

export function encodeFinalState(state: Value | undefined): Uint8Array | undefined {
  return state ? toBinary(ValueSchema, state) : undefined;
}

/** A run's steps for the FULL view (see stepStatuses). */
export interface StepList {
  steps: StepStatus[];
  truncated: boolean;
}

/** A run held in memory. `steps` is given for the FULL view. */
export function runFromMachine(id: RunIdentity, machine: RunMachine, steps?: StepList): Run {
  const r = machine.result;
  return create(RunSchema, {
    id: id.uid,
    namespace: id.namespace,
    requestId: id.requestId,
    name: id.name,
    state: machine.runState,
    outcome: r ? outcomeMessage(r.outcome) : undefined,
    finalState: r?.finalState,
    createTime: timestampFromMs(id.createdAt),
    startTime: id.startAt > id.createdAt ? timestampFromMs(id.startAt) : undefined,
    finishTime: machine.finishedAt !== undefined ? timestampFromMs(machine.finishedAt) : undefined,
    steps: steps?.steps ?? [],
    stepsTruncated: steps?.truncated ?? false,
    taskCount: machine.graph.taskCount,
  });
}

/** A run read from its row (finished, or owned by another process). */
export function runFromRow(row: RunRow, steps?: StepList): Run {
  return create(RunSchema, {
    id: row.uid,
    namespace: row.namespace,
    requestId: row.request_id ?? "",
    name: row.name,
    state: row.state as RunState,
    outcome: row.outcome?.length ? fromBinary(OutcomeSchema, row.outcome) : undefined,
    finalState: row.final_state?.length ? fromBinary(ValueSchema, row.final_state) : undefined,
    createTime: timestampFromMs(row.created_at.getTime()),
    startTime: row.start_at ? timestampFromMs(row.start_at.getTime()) : undefined,
    finishTime: row.finished_at ? timestampFromMs(row.finished_at.getTime()) : undefined,
    steps: steps?.steps ?? [],
    stepsTruncated: steps?.truncated ?? false,
    taskCount: row.task_count,
  });
}

/** The events one applied input produced: changed steps, then the run's new state if it changed. */
export function eventsOf(uid: string, machine: RunMachine, seq: number, at: number, previous: RunState, running?: ReadonlySet<number>): RunEvent[] {
  const out: RunEvent[] = [];
  const time = timestampFromMs(at);
  if (machine.changed.length) {
    const seen = new Set<number>();
    for (const id of machine.changed) {
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(
        create(RunEventSchema, { runId: uid, seq: BigInt(seq), time, kind: { case: "step", value: stepStatusOf(machine.graph, id, running && { running }) } }),
      );
    }
  }
  const now = machine.runState;
  if (now !== previous) {
    const r = machine.result;
    out.push(
      create(RunEventSchema, {
        runId: uid,
        seq: BigInt(seq),
        time,
        kind: { case: "run", value: create(RunStateChangedSchema, { state: now, outcome: r ? outcomeMessage(r.outcome) : undefined }) },
      }),
    );
  }
  return out;
}
