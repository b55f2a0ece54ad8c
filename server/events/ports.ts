// What the events folder needs from the rest of the server, as ports that
// server/server.ts fills in: events/ may not import the API layer (where a
// SubmitRunRequest is checked and prepared) nor the waiting steps' engine side.

import type { SubmitRunRequest, Value } from "@pipewright/protocol";
import type { PreparedSubmit } from "../engine/items.js";

/** An event as stored, handed to the waiting steps. */
export interface PublishedEvent {
  eventId: string;
  name: string;
  payload: Value;
  publishedAt: Date;
}

/**
 * Steps waiting for an event (the wait step of issue 16). Called once the
 * event's triggers have started their runs and before the event is marked
 * triggered: a process that dies in between leaves the event to the sweeper,
 * which calls it again. So delivery is at least once; an implementation is
 * idempotent by (namespace, eventId).
 */
export interface EventWaiters {
  deliver(namespace: string, event: PublishedEvent): Promise<void>;
}

/** Checks a SubmitRunRequest as SubmitRun does and prepares it for RunEngine.submit (server/api/prepare-submit.ts). */
export type PrepareSubmit = (request: SubmitRunRequest, namespace: string) => Promise<PreparedSubmit>;
