// The local runner's wait steps (Step.wait), on real timers or a VirtualClock:
// a sleep passes the flow on; a signal or event wait gives what arrived, or
// fails with pipewright.Timeout. Signals and events arrive at the times the
// run's options give. Written apart from the server's (core/wait-steps.ts):
// the differential tests compare the two.

import { create } from "@bufbuild/protobuf";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { encodeValue, TaskErrorSchema, type TaskError, type Value, type Wait } from "@pipewright/protocol";
import type { VirtualClock } from "./virtual-clock.js";

/** A signal or an event arriving during a local run. */
export interface LocalArrival {
  name: string;
  payload?: unknown;
  /** When, in ms after the run starts (after any delayed start). Default 0. */
  atMs?: number;
  /** A signal id (SignalRunRequest.signal_id): a repeat is applied once. */
  id?: string;
}

/** What flows into and out of a wait step (the local runner's flow). */
export interface WaitFlow {
  error?: TaskError;
  args: Value[];
  kwargs: Record<string, Value>;
  state?: Value;
}

export class LocalWaitSteps {
  private readonly waits = new LocalWaits();

  constructor(
    private readonly sleep: (ms: number) => Promise<void>,
    private readonly now: () => number,
    private readonly clock?: VirtualClock,
  ) {}

  /** Calls `fire` in `ms`, on the runner's clock; returns how to call it off. */
  private later(ms: number, fire: () => void): () => void {
    if (this.clock) {
      let off = false;
      this.clock.at(this.clock.now() + ms, () => off || fire());
      return () => void (off = true);
    }
    const t = setTimeout(fire, ms);
    return () => clearTimeout(t);
  }

  /** The run's signals and events, each at its time (those at 0 before the first step). */
  scheduleArrivals(signals: LocalArrival[], events: LocalArrival[]): void {
    for (const s of signals) {
      const arrive = () => this.waits.signal(s.name, encodeValue(s.payload ?? null), s.id);
      if (!s.atMs || s.atMs <= 0) arrive();
      else this.later(s.atMs, arrive);
    }
    for (const e of events) {
      const arrive = () => this.waits.event(e.name, encodeValue(e.payload ?? null));
      if (!e.atMs || e.atMs <= 0) arrive();
      else this.later(e.atMs, arrive);
    }
  }

  /** A wait step: a sleep passes the flow on; a signal or event wait gives what arrived, or times out. */
  async run(w: Wait, flow: WaitFlow, path: string): Promise<WaitFlow> {
    const c = w.condition;
    if (c.case === "duration" || c.case === "time") {
      const ms = c.case === "duration" ? durationMs(c.value) : timestampMs(c.value) - this.now();
      if (ms > 0) await this.sleep(ms);
      return flow;
    }
    if (c.case !== "signal" && c.case !== "event") throw new Error(`unvalidated wait at ${path}`);
    const timeoutMs = w.timeout ? durationMs(w.timeout) : 0;
    const arrived = await new Promise<Value | undefined>((resolve) => {
      let ended = false;
      let cancel = () => {};
      const take = (payload: Value | undefined) => {
        ended = true;
        cancel();
        resolve(payload);
      };
      const withdraw = this.waits.await(c.case as "signal" | "event", c.value, take);
      if (timeoutMs > 0 && !ended)
        cancel = this.later(timeoutMs, () => {
          withdraw();
          resolve(undefined);
        });
    });
    if (arrived) return { args: [arrived], kwargs: {}, state: flow.state };
    return {
      error: create(TaskErrorSchema, { type: "pipewright.Timeout", message: `waited more than ${timeoutMs} ms for ${c.case} ${c.value}`, origin: path }),
      args: [],
      kwargs: {},
      state: flow.state,
    };
  }
}

/**
 * The local run's waits for signals and events, and the signals kept for
 * waits not reached yet: each signal ends the wait for its name that began
 * first, or is kept; an event ends every wait for its name begun by then.
 */
class LocalWaits {
  private readonly forSignal = new Map<string, Set<(v: Value) => void>>();
  private readonly forEvent = new Map<string, Set<(v: Value) => void>>();
  private readonly kept = new Map<string, Value[]>();
  private readonly seen = new Set<string>();

  /** Begins a wait; returns how to withdraw it (its timeout). A kept signal ends it at once. */
  await(kind: "signal" | "event", name: string, take: (v: Value) => void): () => void {
    if (kind === "signal") {
      const kept = this.kept.get(name);
      if (kept?.length) {
        take(kept.shift()!);
        return () => {};
      }
    }
    const index = kind === "signal" ? this.forSignal : this.forEvent;
    let set = index.get(name);
    if (!set) index.set(name, (set = new Set()));
    set.add(take);
    return () => set.delete(take);
  }

  signal(name: string, payload: Value, id?: string): void {
    if (id !== undefined) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
    }
    const first = this.forSignal.get(name)?.values().next().value;
    if (first) {
      this.forSignal.get(name)!.delete(first);
      first(payload);
      return;
    }
    const list = this.kept.get(name) ?? [];
    list.push(payload);
    this.kept.set(name, list);
  }

  event(name: string, payload: Value): void {
    const waiting = [...(this.forEvent.get(name) ?? [])];
    this.forEvent.delete(name);
    for (const take of waiting) take(payload);
  }
}
