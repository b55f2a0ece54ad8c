// Publishing events from task code: `currentTask().publishEvent(name, payload)`
// makes a unary PublishEvent call on the worker's own server address, with its
// TLS, token and namespace.
//
// Exactly once despite at-least-once execution: a task runs again after a
// crash or a lost worker (and after a failure, when its retry policy allows),
// and publishes again. So the default event id is derived from what stays the
// same across those tries: the run id, the step's path, and a counter of the
// calls this attempt made (1st, 2nd, ... publishEvent) - never the attempt
// number. The re-run's publishes carry the same ids, and the server starts
// nothing new for them. A task that does want a new event on each try passes
// its own `eventId` (e.g. with `retryNumber` in it).

import { createHash } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { createClient, encodeValue, EventService, type Client } from "@pipewright/protocol";

export interface PublishEventOptions {
  /** Idempotency key (1 to 128 printable ASCII characters). Default: derived from the run, the step's path and the call's rank in the attempt (see above). */
  eventId?: string;
}

/** What a publish answers: the event's id, the runs its triggers started, and whether it was published before (a re-run's publish). */
export interface PublishEventResult {
  eventId: string;
  runs: { triggerId: string; runId: string; error: string }[];
  duplicate: boolean;
}

export type PublishEvent = (name: string, payload?: unknown, options?: PublishEventOptions) => Promise<PublishEventResult>;

/** The default id of an attempt's n-th publish (n from 1): "<run id>/<16 hex of the path's SHA-256>/<n>", at most 128 characters. */
export function taskEventId(runId: string, path: string, n: number): string {
  return `${runId}/${createHash("sha256").update(path).digest("hex").slice(0, 16)}/${n}`;
}

/** The worker's EventService client, one per server address it uses. */
export class TaskEvents {
  private client?: Client<typeof EventService>;
  private address = "";

  constructor(private readonly options: { credentials: grpc.ChannelCredentials; token?: string; namespace?: string }) {}

  /** The publishEvent of one attempt (its own call counter). `address`: the server the worker talks to now. */
  forAttempt(runId: string, path: string, address: () => string): PublishEvent {
    let calls = 0;
    return async (name, payload = null, options = {}) => {
      const eventId = options.eventId ?? taskEventId(runId, path, ++calls);
      const r = await this.clientFor(address()).publishEvent({ name, payload: encodeValue(payload), eventId });
      return { eventId: r.eventId, runs: r.runs.map(({ triggerId, runId, error }) => ({ triggerId, runId, error })), duplicate: r.duplicate };
    };
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }

  private clientFor(address: string): Client<typeof EventService> {
    if (!this.client || this.address !== address) {
      this.client?.close();
      this.client = createClient(EventService, address, this.options);
      this.address = address;
    }
    return this.client;
  }
}

/** Where there is no server to publish to (the local runner). */
export const noEvents: PublishEvent = () => Promise.reject(new Error("publishEvent needs a Pipewright server: this task is not run by a Worker"));
