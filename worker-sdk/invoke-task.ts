// Runs one attempt of a task: decode the inputs, call the function in its
// context, encode what came out. Shared by the Worker and the local runner so
// that both call task code in exactly the same way.

import { ParentResults, type Pipeline as PipelineMessage } from "@pipewright/protocol";
import type { TaskError, Value } from "@pipewright/protocol";
import { Pipeline } from "@pipewright/client";
import { decodeValue, encodeError, encodeState, encodeValue, RemoteError } from "@pipewright/protocol";
import { TerminalError, type TaskDefinition } from "./task.js";
import { runWithContext } from "./task-context.js";
import { noEvents, type PublishEvent } from "./task-events.js";

export interface AttemptInput {
  args: Value[];
  kwargs: Record<string, Value>;
  state?: Value;
  parentResults?: Record<string, Value>;
  parentResultsMode: ParentResults;
  runId: string;
  stepId: number;
  retryNumber: number;
  attempt: number;
  path: string;
  signal: AbortSignal;
  heartbeat: (progress?: unknown) => void;
  /** The attempt's publishEvent (worker: TaskEvents.forAttempt); unset: none (the local runner). */
  publishEvent?: PublishEvent;
}

export type AttemptOutcome = { case: "value"; value: Value } | { case: "error"; value: TaskError } | { case: "pipeline"; value: PipelineMessage };

export interface AttemptResult {
  outcome: AttemptOutcome;
  /** Set for stateful tasks: the state they returned. */
  state?: Value;
}

export async function invokeTask(def: TaskDefinition, input: AttemptInput): Promise<AttemptResult> {
  try {
    const args = input.args.map(decodeValue);
    const kwargs = Object.fromEntries(Object.entries(input.kwargs).map(([k, v]) => [k, decodeValue(v)]));
    const parentResults = input.parentResults ? Object.fromEntries(Object.entries(input.parentResults).map(([k, v]) => [k, decodeValue(v)])) : undefined;
    const mode = input.parentResultsMode;
    if (parentResults && (mode === ParentResults.ALWAYS || (mode === ParentResults.AUTO && def.wantsParentResults))) {
      args.unshift(parentResults);
    }
    const context = {
      task: def.name,
      runId: input.runId,
      stepId: input.stepId,
      retryNumber: input.retryNumber,
      attempt: input.attempt,
      path: input.path,
      kwargs,
      parentResults,
      signal: input.signal,
      heartbeat: input.heartbeat,
      publishEvent: input.publishEvent ?? noEvents,
    };
    const state = input.state ? decodeValue(input.state) : null;
    const returned = await runWithContext(context, () => (def.withState ? def.fn(state, ...args) : def.fn(...args)));
    let result: unknown = returned;
    let newState: Value | undefined;
    if (def.withState) {
      if (!Array.isArray(returned) || returned.length !== 2) {
        throw new TypeError(`stateful task ${def.name} must return [state, result], got ${describe(returned)}`);
      }
      newState = encodeState(returned[0]);
      result = returned[1];
    }
    if (result instanceof Pipeline) return { outcome: { case: "pipeline", value: result.unchecked() }, state: newState };
    return { outcome: { case: "value", value: encodeValue(result) }, state: newState };
  } catch (err) {
    return { outcome: { case: "error", value: toTaskError(err) } };
  }
}

/** The wire form of anything a task may throw. */
export function toTaskError(err: unknown): TaskError {
  if (err instanceof RemoteError) return encodeError(err);
  if (err instanceof Error) {
    const type = err.name && err.name !== "Error" ? err.name : err.constructor?.name || "Error";
    const e = err as Error & { details?: unknown; terminal?: boolean };
    return encodeError({
      type,
      message: err.message,
      stack: err.stack ?? "",
      details: e.details,
      terminal: err instanceof TerminalError || e.terminal === true,
    });
  }
  return encodeError({ type: "Error", message: String(err) });
}

function describe(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 80) ?? String(v);
  } catch {
    return String(v);
  }
}
