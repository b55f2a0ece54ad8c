// Drives a RunMachine in this process: every dispatch effect is executed at
// once by calling the task function. Exercises the core's semantics without
// a database or a network (the end-to-end tests do the same for real).

import type { Pipeline as PipelineMessage } from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { decodeError, decodeValue, encodeValue } from "../../proto/runtime/values.js";
import { DEFAULT_MACHINE_CONFIG, RunMachine, type Dispatch, type MachineConfig } from "../../server/core/run-machine.js";
import { invokeTask } from "../../worker-sdk/invoke-task.js";
import type { TaskDefinition } from "../../worker-sdk/task.js";
import type { LocalOutcome } from "../../worker-sdk/local-runner.js";

/** Something to apply to the run after the `after`-th task result (cancel, pause, resume...). */
export interface Interruption {
  after: number;
  input: "cancel" | "pause" | "resume" | "timeout";
}

export async function simulate(
  pipeline: PipelineMessage,
  tasks: Iterable<TaskDefinition<any, any>>,
  config: MachineConfig = DEFAULT_MACHINE_CONFIG,
  interruptions: Interruption[] = [],
  /** Called for every dispatch with the number of interruptions applied before it. */
  onDispatch?: (d: Dispatch, interruptionsSoFar: number) => void,
  /** Signals sent right after the start (see random-pipelines.ts Arrivals). */
  signals: { name: string; payload: unknown; id?: string }[] = [],
): Promise<LocalOutcome & { machine: RunMachine; runState: RunState }> {
  const defs = new Map([...tasks].map((t) => [t.name, t]));
  const machine = new RunMachine(pipeline, config);
  let now = 0;
  const queue: Dispatch[] = [];
  let results = 0;
  let applied = 0;
  const take = (effects: ReturnType<RunMachine["apply"]>) => {
    for (const e of effects) {
      if (e.type === "dispatch") {
        queue.push(e.dispatch);
        onDispatch?.(e.dispatch, applied);
      }
      if (e.type === "cancelTask") queue.splice(0, queue.length, ...queue.filter((d) => d.step !== e.step));
    }
  };
  const pending = [...interruptions].sort((a, b) => a.after - b.after);
  const apply = (i: Interruption) => {
    applied++;
    take(machine.apply({ type: i.input, at: ++now, reason: "test" } as never));
  };
  const interrupt = () => {
    while (pending.length && pending[0].after <= results) apply(pending.shift()!);
  };
  take(machine.apply({ type: "start", at: now }));
  for (const s of signals) take(machine.apply({ type: "signal", at: now, name: s.name, payload: encodeValue(s.payload), id: s.id }));
  interrupt();
  for (;;) {
    if (!queue.length) {
      // Nothing to run: time moves on to the next wait's end, if a wait is left.
      const wake = machine.nextWakeAt();
      if (wake === undefined) break;
      now = Math.max(now + 1, wake);
      take(machine.apply({ type: "wake", at: now }));
      continue;
    }
    const d = queue.shift()!;
    const def = defs.get(d.call.task);
    if (!def) throw new Error(`no task ${d.call.task}`);
    const result = await invokeTask(def, {
      args: d.input.args,
      kwargs: d.input.kwargs,
      state: d.input.state,
      parentResults: d.input.parentResults,
      parentResultsMode: d.parentResultsMode,
      runId: "sim",
      stepId: d.step,
      retryNumber: d.retry,
      attempt: d.retry,
      path: d.path,
      signal: new AbortController().signal,
      heartbeat: () => {},
    });
    now = Math.max(now + 1, d.notBefore);
    take(machine.apply({ type: "taskFinished", at: now, step: d.step, outcome: result.outcome, state: result.state }));
    results++;
    interrupt();
    // Nothing left to run (say, all held by a pause): what comes later comes now.
    while (!queue.length && pending.length) apply(pending.shift()!);
  }
  const r = machine.result;
  if (!r) throw new Error("the run did not finish although nothing is left to run");
  const state = r.finalState ? decodeValue(r.finalState) : null;
  const base =
    "error" in r.outcome
      ? { ok: false as const, error: decodeError(r.outcome.error), state }
      : { ok: true as const, value: decodeValue(r.outcome.value), state };
  return { ...base, machine, runState: r.state };
}
