// A run rebuilt from what is stored: its row (the submitted pipeline) and its
// append-only log of events.

import { create, fromBinary } from "@bufbuild/protobuf";
import { PipelineSchema, RunEventSchema, RunState, type RunEvent } from "@pipewright/protocol";
import { pushAll } from "../core/arrays.js";
import { RunMachine, type MachineConfig } from "../core/run-machine.js";
import type { RunRow } from "../store/run-store.js";
import type { StoredEvent } from "../store/run-events.js";
import { decodeEvent } from "./event-codec.js";
import { eventsOf, runFromRow } from "./run-views.js";

/** Rebuilds a run's machine from its row and stored events. */
export function replay(row: RunRow, events: StoredEvent[], config: MachineConfig): RunMachine {
  const machine = new RunMachine(fromBinary(PipelineSchema, row.spec), config);
  machine.apply({ type: "start", at: startedAt(row) });
  for (const e of events) machine.apply(decodeEvent(e));
  return machine;
}

/**
 * The public events of a run's history, rebuilt from its log. A run ended by
 * pipewright.Internal (its log does not replay, or does not hold what ended
 * it) gives what replays, then its end as its row says.
 */
export function historyEvents(row: RunRow, events: StoredEvent[], config: MachineConfig): RunEvent[] {
  const out: RunEvent[] = [];
  let before = RunState.UNSPECIFIED;
  let seq = 0;
  try {
    const machine = new RunMachine(fromBinary(PipelineSchema, row.spec), config);
    machine.apply({ type: "start", at: startedAt(row) });
    pushAll(out, eventsOf(row.uid, machine, 0, startedAt(row), before));
    before = machine.runState;
    for (const e of events) {
      const input = decodeEvent(e);
      machine.apply(input);
      seq = e.seq;
      pushAll(out, eventsOf(row.uid, machine, e.seq, input.at, before));
      before = machine.runState;
    }
  } catch {
    // what replayed so far is all the log can tell
  }
  if (row.state >= RunState.SUCCEEDED && row.state !== before) {
    const view = runFromRow(row);
    out.push(create(RunEventSchema, { runId: row.uid, seq: BigInt(seq + 1), kind: { case: "run", value: { state: view.state, outcome: view.outcome } } }));
  }
  return out;
}

/** When the run started: its creation, or its delayed start. */
export function startedAt(row: Pick<RunRow, "created_at" | "start_at">): number {
  return (row.start_at ?? row.created_at).getTime();
}
