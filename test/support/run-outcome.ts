// A finished run's outcome, decoded like the local runner's.

import { RunState, type Run } from "../../proto/gen/pipewright/v1/run_pb.js";
import { decodeError, decodeValue } from "../../proto/runtime/values.js";
import type { Outcome } from "./outcome-matchers.js";

export function outcomeOf(run: Run): Outcome & { runState: RunState } {
  const state = run.finalState ? decodeValue(run.finalState) : null;
  const kind = run.outcome?.kind;
  if (kind?.case === "value") return { ok: true, value: decodeValue(kind.value), state, runState: run.state };
  if (kind?.case === "error") return { ok: false, error: decodeError(kind.value), state, runState: run.state };
  throw new Error(`run ${run.id} has no outcome (state ${RunState[run.state]})`);
}
