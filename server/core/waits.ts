// The wait steps of one run (Step.wait) that are waiting now, by what ends
// them: a time (a sleep's end, a signal or event wait's timeout), a signal
// name, an event name; and the signals sent before any step waited for them,
// kept in the order they came. Bookkeeping only: the run machine decides what
// a wait's end means for the pipeline.
//
// Sets, not arrays: a 100,000-branch group whose branches all wait for one
// signal, then time out together, would make each removal from an array a
// scan of it (quadratic).

import type { Value } from "@pipewright/protocol";

/** Signals one run keeps for waits not reached yet, at most: past this SignalRun is refused (RESOURCE_EXHAUSTED). */
export const MAX_KEPT_SIGNALS = 1000;
/** Signal ids (SignalRunRequest.signal_id) one run remembers to drop repeats, at most: past this a signal with an id is refused. */
export const MAX_SIGNAL_IDS = 10_000;

export type WaitKind = "sleep" | "signal" | "event";

export class Waits {
  /** Every wait step waiting now. */
  readonly waiting = new Set<number>();
  private readonly wakeAt = new Map<number, number>();
  /** The earliest wake time; null when it must be computed again. */
  private earliest: number | undefined | null = undefined;
  private readonly bySignal = new Map<string, Set<number>>();
  private readonly byEvent = new Map<string, Set<number>>();
  private readonly nameOf = new Map<number, { kind: "signal" | "event"; name: string }>();
  private readonly kept = new Map<string, Value[]>();
  private keptCount = 0;
  private readonly signalIds = new Set<string>();

  /** A wait step starts waiting; `wakeAt`: when it ends by itself (a sleep) or times out. */
  add(step: number, kind: WaitKind, name: string, wakeAt: number | undefined): void {
    this.waiting.add(step);
    if (wakeAt !== undefined) {
      this.wakeAt.set(step, wakeAt);
      if (this.earliest !== null && (this.earliest === undefined || wakeAt < this.earliest)) this.earliest = wakeAt;
    }
    if (kind === "sleep") return;
    const index = kind === "signal" ? this.bySignal : this.byEvent;
    let set = index.get(name);
    if (!set) index.set(name, (set = new Set()));
    set.add(step);
    this.nameOf.set(step, { kind, name });
  }

  /** A wait step stops waiting (it ended, or the run is stopping). */
  remove(step: number): void {
    if (!this.waiting.delete(step)) return;
    const at = this.wakeAt.get(step);
    if (at !== undefined) {
      this.wakeAt.delete(step);
      if (at === this.earliest) this.earliest = null;
    }
    const named = this.nameOf.get(step);
    if (!named) return;
    this.nameOf.delete(step);
    const index = named.kind === "signal" ? this.bySignal : this.byEvent;
    const set = index.get(named.name)!;
    set.delete(step);
    if (set.size === 0) index.delete(named.name);
  }

  /** When the next wait ends by itself or times out, if any does. */
  nextWakeAt(): number | undefined {
    if (this.earliest === null) {
      let min: number | undefined;
      for (const at of this.wakeAt.values()) if (min === undefined || at < min) min = at;
      this.earliest = min;
    }
    return this.earliest;
  }

  /** The waits whose time has come at `now`, earliest first (ties in step order). */
  due(now: number): number[] {
    const out: [number, number][] = [];
    for (const [step, at] of this.wakeAt) if (at <= now) out.push([at, step]);
    return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[1]);
  }

  /** The step that waited longest for signal `name`, if one waits. */
  firstWaitingFor(name: string): number | undefined {
    const set = this.bySignal.get(name);
    return set ? set.values().next().value : undefined;
  }

  /** Every step waiting for event `name`, in the order they began. */
  waitingForEvent(name: string): number[] {
    return [...(this.byEvent.get(name) ?? [])];
  }

  /** Event names waited for now. */
  eventNames(): IterableIterator<string> {
    return this.byEvent.keys();
  }

  /** Keeps a signal nobody waits for yet. */
  keep(name: string, payload: Value): void {
    let list = this.kept.get(name);
    if (!list) this.kept.set(name, (list = []));
    list.push(payload);
    this.keptCount++;
  }

  /** The oldest kept signal of `name`, taken. */
  takeKept(name: string): Value | undefined {
    const list = this.kept.get(name);
    if (!list) return undefined;
    const payload = list.shift()!;
    if (list.length === 0) this.kept.delete(name);
    this.keptCount--;
    return payload;
  }

  /** Signals kept for waits not reached yet. */
  get keptSignals(): number {
    return this.keptCount;
  }

  /**
   * Records a signal's (or event's) id; false when it was seen before (a
   * repeat). Past MAX_SIGNAL_IDS ids nothing more is recorded: SignalRun
   * refuses signals with ids before that (signalRefusal), and an event
   * delivered twice is then applied twice.
   */
  firstSight(id: string): boolean {
    if (this.signalIds.has(id)) return false;
    if (this.signalIds.size < MAX_SIGNAL_IDS) this.signalIds.add(id);
    return true;
  }

  /** Why one more signal cannot be taken, if it cannot (the run's bounds). */
  signalRefusal(withId: boolean): string | undefined {
    if (this.keptCount >= MAX_KEPT_SIGNALS) return `the run already keeps ${MAX_KEPT_SIGNALS} signals that no wait step has taken, the limit`;
    if (withId && this.signalIds.size >= MAX_SIGNAL_IDS) return `the run already remembers ${MAX_SIGNAL_IDS} signal ids, the limit`;
    return undefined;
  }

  /** Forgets every wait (the run ended). */
  clear(): void {
    this.waiting.clear();
    this.wakeAt.clear();
    this.earliest = undefined;
    this.bySignal.clear();
    this.byEvent.clear();
    this.nameOf.clear();
  }
}
