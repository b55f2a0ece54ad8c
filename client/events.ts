// Events and triggers from the TypeScript client: `client.events.publish`
// and `client.triggers.create/get/list/delete/pause/resume` (EventService).

import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import { decodeValue, encodeValue, type Client, type EventService, type Trigger as TriggerMessage } from "@pipewright/protocol";
import { retryLater } from "./call-errors.js";
import type { Pipeline } from "./pipeline-builder.js";

/** A run an event started through a trigger. `runId` is empty when it could not be started; `error` says why. */
export interface TriggeredRun {
  triggerId: string;
  runId: string;
  error: string;
}

export interface PublishResult {
  eventId: string;
  /** One per matching trigger. */
  runs: TriggeredRun[];
  /** The event id was stored before this call (or before this call's retry, see EventService.PublishEvent): nothing new happened, `runs` are the first time's. */
  duplicate: boolean;
}

export interface PublishOptions {
  /** Idempotency key (1 to 128 printable ASCII characters): publishing it again starts nothing new. Default: a fresh UUID, made once, so the call's own retries stay one event. */
  eventId?: string;
}

/** A published event, as `client.events.list()` shows it. */
export interface PublishedEvent {
  eventId: string;
  name: string;
  payload: unknown;
  publishedAt: Date;
  /** When its triggers' runs were started; undefined while not yet. */
  triggeredAt?: Date;
  runs: TriggeredRun[];
}

/**
 * Events of the client's namespace.
 * @example
 *   const { runs } = await client.events.publish("order.created", { id: 42, region: "eu" });
 */
export class Events {
  constructor(private readonly calls: Client<typeof EventService>) {}

  /** Publishes an event; every matching trigger starts one run with `payload` as its first argument. Tried again while the server says "retry later" (same event id: still one event). */
  async publish(name: string, payload: unknown = null, options: PublishOptions = {}): Promise<PublishResult> {
    const request = { name, payload: encodeValue(payload), eventId: options.eventId ?? randomUUID() };
    const r = await retryLater(() => this.calls.publishEvent(request));
    return { eventId: r.eventId, runs: r.runs.map(({ triggerId, runId, error }) => ({ triggerId, runId, error })), duplicate: r.duplicate };
  }

  /** Recent events, newest first (one page; pass `pageToken` from the previous answer for the next). */
  async list(options: { name?: string; pageSize?: number; pageToken?: string } = {}): Promise<{ events: PublishedEvent[]; nextPageToken: string }> {
    const r = await this.calls.listEvents({ name: options.name ?? "", pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" });
    const events = r.events.map((e) => ({
      eventId: e.eventId,
      name: e.name,
      payload: decodeValue(e.payload),
      publishedAt: timestampDate(e.publishTime!),
      triggeredAt: e.triggerTime ? timestampDate(e.triggerTime) : undefined,
      runs: e.runs.map(({ triggerId, runId, error }) => ({ triggerId, runId, error })),
    }));
    return { events, nextPageToken: r.nextPageToken };
  }
}

export interface TriggerOptions<R = unknown> {
  /** Unique in the namespace: 1 to 63 of letters, digits and _ . -. */
  id: string;
  /** The event name that starts it. */
  eventName: string;
  /** What each matching event runs; the event's payload comes first in its initial arguments. */
  pipeline: Pipeline<R>;
  /** Conditions on the payload, path -> the value it must equal (compared as JSON): `{ "order.region": "eu", "items.0.sku": "A1" }`. */
  filter?: Record<string, unknown>;
  /** Display name of its runs. */
  runName?: string;
  /** Run timeout of its runs. */
  runTimeoutMs?: number;
}

/**
 * Triggers of the client's namespace.
 * @example
 *   await client.triggers.create({ id: "ship-eu", eventName: "order.created", filter: { region: "eu" }, pipeline: ship.send() });
 */
export class Triggers {
  constructor(private readonly calls: Client<typeof EventService>) {}

  async create<R>(options: TriggerOptions<R>): Promise<TriggerMessage> {
    const filter = Object.entries(options.filter ?? {}).map(([path, value]) => ({ path, equals: JSON.stringify(value) ?? "null" }));
    const trigger = {
      triggerId: options.id,
      eventName: options.eventName,
      filter,
      pipeline: options.pipeline.toProto(),
      runName: options.runName ?? "",
      runTimeout: options.runTimeoutMs ? durationFromMs(options.runTimeoutMs) : undefined,
    };
    return (await this.calls.createTrigger({ trigger })).trigger!;
  }

  async get(id: string): Promise<TriggerMessage> {
    return (await this.calls.getTrigger({ triggerId: id })).trigger!;
  }

  /** One page, by id; pass `pageToken` from the previous answer for the next. */
  async list(options: { pageSize?: number; pageToken?: string } = {}): Promise<{ triggers: TriggerMessage[]; nextPageToken: string }> {
    const r = await this.calls.listTriggers({ pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" });
    return { triggers: r.triggers, nextPageToken: r.nextPageToken };
  }

  async delete(id: string): Promise<void> {
    await this.calls.deleteTrigger({ triggerId: id });
  }

  /** Events published while it is paused do not start it. */
  async pause(id: string): Promise<TriggerMessage> {
    return (await this.calls.pauseTrigger({ triggerId: id })).trigger!;
  }

  async resume(id: string): Promise<TriggerMessage> {
    return (await this.calls.resumeTrigger({ triggerId: id })).trigger!;
  }
}
