// Deadlines the engine keeps: a run's own deadline (run_timeout), and how long
// a dispatched attempt may wait for a worker (wait timeout). The deadlines of
// attempts a worker holds (execution, heartbeat, lease) are the dispatcher's.
// Each ends the same way as anything else that happens to a run: as an input
// committed through the batch (a "timeout" control, a failed result).

import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { setLongTimeout, TaskResultSchema } from "@pipewright/protocol";
import type { Dispatch } from "../core/run-machine.js";
import type { TimeoutDefaults } from "../core/assignment-codec.js";
import { serverError } from "../core/values.js";
import type { Sql } from "../store/database.js";
import * as queue from "../store/task-queue.js";
import type { OwnedRun } from "./owned-run.js";
import type { IncomingResult } from "./ports.js";
import type { Logger } from "../observe/logger.js";

/** Arms the run's deadline, if it has one and is not finished: `fire` then asks for its timeout. */
export function armRunDeadline(run: OwnedRun, fire: () => void): void {
  if (run.deadline === undefined || run.timer || run.machine.result) return;
  run.timer = setLongTimeout(fire, Math.max(0, run.deadline - Date.now()), { unref: true });
}

/** How long a dispatched attempt may wait for a worker (ms; 0: for ever). */
function waitTimeoutMs(d: Pick<Dispatch, "call">, defaults: TimeoutDefaults): number {
  const set = d.call.options?.waitTimeout;
  return set ? durationMs(set) : defaults.waitMs;
}

/** When a dispatched attempt fails for waiting too long for a worker, if ever (stored with its queue row). */
export function waitDeadline(d: Dispatch, defaults: TimeoutDefaults): Date | undefined {
  const ms = waitTimeoutMs(d, defaults);
  return ms > 0 ? new Date(Math.max(d.notBefore, Date.now()) + ms) : undefined;
}

/**
 * The attempts past their wait deadline, of runs held here and still awaiting
 * them, as failed results (pipewright.Timeout): they are fenced and applied as
 * any result is.
 */
export async function expiredWaits(sql: Sql, held: (runId: number) => OwnedRun | undefined, defaults: TimeoutDefaults, log: Logger): Promise<IncomingResult[]> {
  const expired = await queue.expiredWaits(sql, 1000);
  const now = Date.now();
  const results: IncomingResult[] = [];
  for (const k of expired) {
    const run = held(k.runId);
    const step = run?.machine.graph.steps[k.step];
    if (!run || !step || step.kind !== "task" || !run.machine.isAwaitingResult(k.step)) continue;
    const limitMs = waitTimeoutMs(step, defaults);
    const error = serverError("Timeout", `waited more than ${limitMs} ms for a worker`);
    log.warn(
      // A ready row holds the number of the last attempt handed out: the one that waited is the next.
      { run_id: run.uid, step: k.step, attempt: k.attempt + 1, task: step.call.task, timeout: "waitTimeout", limit_ms: limitMs },
      `attempt timed out: waited more than ${limitMs} ms for a worker`,
    );
    results.push({
      runId: k.runId,
      step: k.step,
      attempt: k.attempt,
      receivedAt: now,
      result: create(TaskResultSchema, { outcome: { case: "error", value: error } }),
    });
  }
  return results;
}
