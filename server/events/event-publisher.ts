// PublishEvent's work: store the event once, start one run per matching,
// unpaused trigger, tell the waiting steps, mark the event triggered.
//
// Exactly once per (event, trigger), through retries, concurrent publishers
// and crashes, rests on two keys:
//   - the event row is unique by (namespace, event_id): a repeat stores
//     nothing and answers the runs recorded the first time;
//   - each run's request id is "trigger:<trigger_id>:<event_id>": whoever
//     starts it again (a second publisher of the same id racing the first, the
//     sweeper finishing an event whose publisher died) gets the same run.
// Between the insert and the mark a process may die (kill -9): the event
// stays untriggered and EventSweeper (event-sweeper.ts) on any process
// completes it a few seconds later.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { SubmitRunRequestSchema, TriggerSchema, ValueSchema, type Trigger, type Value } from "@pipewright/protocol";
import { randomUUID } from "node:crypto";
import { compileFilter, matchesFilter } from "../core/event-filter.js";
import { triggeredRequestId } from "../core/event-names.js";
import { PipewrightError } from "../core/errors.js";
import type { RunEngine } from "../engine/run-engine.js";
import type { Logger } from "../observe/logger.js";
import type { Sql, Tx } from "../store/database.js";
import { insertEvent, loadEventById, markTriggered, type EventRow, type StoredTriggeredRun } from "../store/events.js";
import { activeTriggersFor } from "../store/triggers.js";
import type { EventWaiters, PrepareSubmit } from "./ports.js";

/**
 * Test hook, for test/faults/events-kill.test.ts only: with this environment
 * variable set to "1" the process kills itself (SIGKILL, as kill -9 would)
 * right after storing a new event, before starting any run: the one moment a
 * crash must not lose the event's triggering.
 */
export const KILL_AFTER_EVENT_INSERT_ENV = "PIPEWRIGHT_TEST_KILL_AFTER_EVENT_INSERT";

/** Triggers read and started at once. */
const TRIGGER_BATCH = 50;

/** Errors that starting one trigger's run will always meet again: recorded with the event, not retried. */
const PERMANENT = new Set(["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "ALREADY_EXISTS", "FAILED_PRECONDITION", "NOT_FOUND"]);

export interface PublishInput {
  name: string;
  payload: Value | undefined;
  /** Empty: one is made. */
  eventId: string;
}

export interface PublishOutcome {
  eventId: string;
  runs: StoredTriggeredRun[];
  duplicate: boolean;
}

export interface PublisherDeps {
  sql: Sql;
  engine: Pick<RunEngine, "submit">;
  prepare: PrepareSubmit;
  waiters: EventWaiters;
  log: Logger;
}

export class EventPublisher {
  constructor(private readonly deps: PublisherDeps) {}

  /** Stores the event (once per event id) and starts its triggers' runs. Errors that may pass (UNAVAILABLE, the database) are thrown: publish again with the same id. */
  async publish(namespace: string, input: PublishInput): Promise<PublishOutcome> {
    const eventId = input.eventId || randomUUID();
    const payload = toBinary(ValueSchema, input.payload ?? create(ValueSchema));
    const { row, inserted } = await insertEvent(this.deps.sql, { namespace, eventId, name: input.name, payload });
    if (inserted && process.env[KILL_AFTER_EVENT_INSERT_ENV] === "1") process.kill(process.pid, "SIGKILL");
    // Stored before, and its runs started: the same answer as then. Stored but not triggered
    // yet (a publisher still at it, or one that died): finish it here, the request ids keep it once.
    const runs = row.triggeredAt ? row.runs : await this.trigger(row);
    return { eventId, runs, duplicate: !inserted };
  }

  /**
   * Starts one run per matching, unpaused trigger of a stored event, tells the
   * waiting steps, and marks it triggered. Returns the runs recorded with the
   * event (the first record wins, should two processes finish it at once).
   * `tx`: the transaction that holds the event's row locked (the sweeper's
   * claim), which must mark it.
   */
  async trigger(row: EventRow, tx?: Tx): Promise<StoredTriggeredRun[]> {
    const { sql, log } = this.deps;
    const payload = fromBinary(ValueSchema, row.payload);
    const runs: StoredTriggeredRun[] = [];
    // A batch of triggers at a time: a trigger is at most 1 MiB, a namespace may hold 10,000 of them.
    for (let after = ""; ;) {
      const triggers = await activeTriggersFor(sql, row.namespace, row.name, after, TRIGGER_BATCH);
      const started = await Promise.all(
        triggers.map(async (t) => {
          const spec = fromBinary(TriggerSchema, t.spec);
          if (!matchesFilter(compileFilter(spec.filter), payload)) return undefined;
          return this.startRun(row, t.triggerId, spec, payload);
        }),
      );
      for (const r of started) if (r) runs.push(r);
      if (triggers.length < TRIGGER_BATCH) break;
      after = triggers.at(-1)!.triggerId;
    }
    await this.deps.waiters.deliver(row.namespace, { eventId: row.eventId, name: row.name, payload, publishedAt: row.publishedAt });
    const marked = await markTriggered(tx ?? sql, row.id, runs);
    if (marked) {
      if (runs.length)
        log.info({ namespace: row.namespace, event_id: row.eventId, event: row.name, runs: runs.length }, `event ${row.name} started ${runs.length} runs`);
      return marked.runs;
    }
    return (await loadEventById(tx ?? sql, row.id))?.runs ?? runs;
  }

  /** One trigger's run; a permanent refusal is recorded as the trigger's error, anything else thrown (the event stays untriggered). */
  private async startRun(row: EventRow, triggerId: string, spec: Trigger, payload: Value): Promise<StoredTriggeredRun> {
    const pipeline = spec.pipeline!;
    const request = create(SubmitRunRequestSchema, {
      requestId: triggeredRequestId(triggerId, row.eventId),
      pipeline: { ...pipeline, initialArgs: [payload, ...pipeline.initialArgs] },
      name: spec.runName,
      runTimeout: spec.runTimeout,
    });
    try {
      const prepared = await this.deps.prepare(request, row.namespace);
      const [outcome] = await this.deps.engine.submit([prepared]);
      return { trigger_id: triggerId, run_id: outcome.run.id, error: "" };
    } catch (err) {
      if (!(err instanceof PipewrightError) || !PERMANENT.has(err.code)) throw err;
      this.deps.log.warn(
        { namespace: row.namespace, event_id: row.eventId, trigger_id: triggerId, err },
        `trigger ${triggerId} could not start a run: ${err.message}`,
      );
      return { trigger_id: triggerId, run_id: "", error: err.message.slice(0, 1000) };
    }
  }
}
