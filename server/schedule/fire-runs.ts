// Starting the run of a recorded fire: the same code for the scheduler's own
// fires, for TriggerSchedule, and for pending fires a crash left behind. It
// may run twice for one fire (two processes, or a retry after the first
// submit did happen but its result was not recorded): the request id derived
// from the fire makes the second submit find the first's run.

import { createHash } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { countTasks, PipelineSchema } from "@pipewright/protocol";
import { PipewrightError } from "../core/errors.js";
import { iso } from "../core/fire-plan.js";
import type { PreparedSubmit } from "../engine/items.js";
import type { RunEngine } from "../engine/run-engine.js";
import type { Logger } from "../observe/logger.js";
import type { Sql } from "../store/database.js";
import { findByRequestIds } from "../store/run-store.js";
import { activeRunsOf, completeFire, failFire, type FireRow } from "../store/schedule-fires.js";
import type { ScheduleRow } from "../store/schedules.js";

/** What the scheduler needs of the engine: its front door's submit and control. */
export type RunStarter = Pick<RunEngine, "submit" | "control">;

/** The SubmitRun a fire makes: the schedule's template, the fire's request id. */
export function preparedFire(schedule: ScheduleRow, fire: FireRow): PreparedSubmit {
  const pipeline = fromBinary(PipelineSchema, schedule.pipeline);
  const name = schedule.run_name || schedule.schedule_id;
  return {
    namespace: schedule.namespace,
    requestId: fire.request_id,
    // What identifies the submission besides its request id: another submit of this
    // request id with a different template (the schedule was updated in between) is a
    // conflict the engine reports, and fireRun then takes the run the first made.
    requestHash: createHash("sha256").update(schedule.pipeline).update(`\0${name}\0${schedule.run_timeout_ms}`).digest(),
    name,
    pipeline,
    spec: schedule.pipeline,
    taskCount: countTasks(pipeline),
    runTimeoutMs: schedule.run_timeout_ms,
  };
}

/**
 * Starts a pending fire's run and records it on the fire. A refusal that
 * retrying cannot mend (the pipeline over this server's limits) skips the fire
 * with the reason; anything else (shutting down, the database away) leaves it
 * pending for the next look. Returns the run id, or undefined.
 */
export async function fireRun(sql: Sql, engine: RunStarter, schedule: ScheduleRow, fire: FireRow, log: Logger): Promise<string | undefined> {
  const at = fire.fire_at;
  try {
    if (fire.cancel_previous) await cancelPrevious(sql, engine, schedule, fire, log);
    let uid: string;
    try {
      const [outcome] = await engine.submit([preparedFire(schedule, fire)]);
      uid = outcome.run.id;
    } catch (err) {
      if (!(err instanceof PipewrightError && err.code === "ALREADY_EXISTS")) throw err;
      const [existing] = await findByRequestIds(sql, [{ namespace: schedule.namespace, requestId: fire.request_id }]);
      if (!existing) throw err;
      uid = existing.uid;
    }
    await completeFire(sql, schedule.id, at, uid);
    log.info(
      { schedule_id: schedule.schedule_id, namespace: schedule.namespace, fire_at: iso(at.getTime()), run_id: uid },
      `schedule ${schedule.schedule_id} fired: run ${uid}`,
    );
    return uid;
  } catch (err) {
    if (err instanceof PipewrightError && (err.code === "INVALID_ARGUMENT" || err.code === "RESOURCE_EXHAUSTED")) {
      await failFire(sql, schedule.id, at, `its run was refused: ${err.message}`);
      log.warn({ schedule_id: schedule.schedule_id, fire_at: iso(at.getTime()) }, `schedule ${schedule.schedule_id}: run refused: ${err.message}`);
      return undefined;
    }
    log.warn(
      { err, schedule_id: schedule.schedule_id, fire_at: iso(at.getTime()) },
      `schedule ${schedule.schedule_id}: fire left pending: ${(err as Error).message}`,
    );
    return undefined;
  }
}

/** CANCEL_PREVIOUS: the schedule's other active runs are cancelled (through whichever process owns each) before the new one starts. */
async function cancelPrevious(sql: Sql, engine: RunStarter, schedule: ScheduleRow, fire: FireRow, log: Logger): Promise<void> {
  const reason = `schedule ${schedule.schedule_id}: replaced by its fire at ${iso(fire.fire_at.getTime())} (overlap CANCEL_PREVIOUS)`;
  for (const uid of await activeRunsOf(sql, schedule.id)) {
    if (uid.startsWith("pending:")) continue; // another fire still starting (this one, or one the retry will start)
    try {
      await engine.control(uid, "cancel", reason);
    } catch (err) {
      // Finished or deleted meanwhile: nothing to cancel.
      if (err instanceof PipewrightError && (err.code === "FAILED_PRECONDITION" || err.code === "NOT_FOUND")) continue;
      throw err;
    }
    log.info({ schedule_id: schedule.schedule_id, run_id: uid }, reason);
  }
}
