// Runs on the server against the local runner: the differential check shared
// by the property and fault tests.

import type { Pipeline } from "../../client/pipeline-builder.js";
import type { Run } from "../../proto/gen/pipewright/v1/run_pb.js";
import { runLocally, type LocalRunOptions } from "../../worker-sdk/local-runner.js";
import { plain, type Outcome } from "./outcome-matchers.js";
import { randomTasks } from "./random-pipelines.js";
import { outcomeOf } from "./run-outcome.js";

/** Outcome and final state as plain JSON, comparable between the server and the local runner. */
export function comparable(o: Outcome): unknown {
  return plain({ ok: o.ok, result: o.ok ? o.value : o.error, state: o.state });
}

/** One line per run whose outcome differs from the local runner's. */
export async function mismatchesAgainstLocal(
  runs: Run[],
  pipelines: Pipeline<unknown>[],
  describe: (i: number) => string = (i) => `case ${i}`,
  /** The local runner's options for case i beyond its tasks (its signals, a virtual clock); default: retry delays skipped. */
  localOptions: (i: number) => Omit<LocalRunOptions, "tasks"> = () => ({ sleep: async () => {} }),
): Promise<string[]> {
  const out: string[] = [];
  for (const [i, run] of runs.entries()) {
    const server = JSON.stringify(comparable(outcomeOf(run)));
    const local = JSON.stringify(comparable(await runLocally(pipelines[i].toProto(), { tasks: randomTasks, ...localOptions(i) })));
    if (server !== local) out.push(`${describe(i)} (run ${run.id}):\n  server: ${server}\n  local:  ${local}`);
  }
  return out;
}
