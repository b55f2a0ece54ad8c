// The rules of event names, event ids and trigger ids. The run an event starts
// through a trigger has the request id "trigger:<trigger_id>:<event_id>": the
// bounds below keep it within the 200 characters of a request id (8 + 63 + 1
// + 128 = 200), and a trigger id holds no ":", so the derived id names one
// (trigger, event) pair only.

import { MAX_WAIT_NAME_LENGTH, waitNameProblem } from "@pipewright/protocol";

/** Longest event name (the wait names' limit) and event id (characters). */
export const MAX_EVENT_NAME_CHARS = MAX_WAIT_NAME_LENGTH;
export const MAX_EVENT_ID_CHARS = 128;
/** Longest trigger id (characters). */
export const MAX_TRIGGER_ID_CHARS = 63;

/** Printable ASCII without spaces: UUIDs, hashes, "<run>/<step>/<n>" from task code. */
const EVENT_ID = /^[\x21-\x7e]{1,128}$/;
/** Letters, digits and _ . -, starting with a letter or a digit. */
const TRIGGER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/**
 * Why `name` is not an event name; undefined when it is one. The rule of the
 * names a wait step waits for (Wait.event, proto/runtime/wait-names.ts): every
 * event a step can wait for can be published.
 */
export function eventNameProblem(name: string): string | undefined {
  return waitNameProblem(name);
}

/** Why `id` is not an event id; undefined when it is one (the empty id is checked by the caller). */
export function eventIdProblem(id: string): string | undefined {
  return EVENT_ID.test(id) ? undefined : `must be 1 to ${MAX_EVENT_ID_CHARS} printable ASCII characters without spaces; got ${quote(id)}`;
}

/** Why `id` is not a trigger id; undefined when it is one. */
export function triggerIdProblem(id: string): string | undefined {
  return TRIGGER_ID.test(id)
    ? undefined
    : `must be 1 to ${MAX_TRIGGER_ID_CHARS} of letters, digits and _ . -, starting with a letter or a digit; got ${quote(id)}`;
}

/** The request id of the run an event starts through a trigger: one run per (trigger, event), however often either side retries. */
export function triggeredRequestId(triggerId: string, eventId: string): string {
  return `trigger:${triggerId}:${eventId}`;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}
