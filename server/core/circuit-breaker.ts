// Circuit breakers, one per task name, so that a failing downstream service
// does not burn through every pipeline's retries.
//
//   CLOSED --(threshold failures in a row)--> OPEN --(cool-down over, a probe
//   is handed out)--> HALF_OPEN --(probe succeeds)--> CLOSED
//                                              \--(probe fails)--> OPEN
//
// While OPEN (and while a HALF_OPEN probe is out), attempts of the task stay
// in the queue: they neither run nor fail, so no retry is used up. Pure: the
// dispatcher feeds it outcomes and the time, and persists what it returns.

import { ErrorTypes } from "@pipewright/protocol";

export type CircuitStateName = "closed" | "open" | "half_open";

export interface CircuitConfig {
  /** Failures in a row that open the circuit; 0 turns breakers off. */
  threshold: number;
  /** How long an open circuit waits before letting a probe through. */
  cooldownMs: number;
}

export interface Circuit {
  task: string;
  state: CircuitStateName;
  failures: number;
  openedAt?: number;
  probeAt?: number;
  /** Database time of the row this state came from or was saved as (orders what is shared). */
  updatedAt?: number;
}

/** What an attempt's outcome means to the breaker of its task. */
export type Verdict = "success" | "failure" | "neutral";

/** Error types that say nothing about the health of the task's downstream. */
const NEUTRAL_ERRORS = new Set<string>([ErrorTypes.cancelled, ErrorTypes.invalidPipeline, ErrorTypes.limitExceeded, ErrorTypes.workerLost]);

export function verdictOf(outcome: { case: string | undefined; value?: unknown }): Verdict {
  if (outcome.case !== "error") return "success";
  return NEUTRAL_ERRORS.has((outcome.value as { type: string }).type) ? "neutral" : "failure";
}

export class CircuitBreakers {
  private readonly circuits = new Map<string, Circuit>();
  /** Tasks whose half-open probe is out, with the attempt it is. */
  private readonly probes = new Map<string, string>();

  constructor(readonly config: CircuitConfig) {}

  get enabled(): boolean {
    return this.config.threshold > 0;
  }

  /**
   * Records an attempt's outcome. Returns the circuit when its state changed
   * (to be persisted and shared), otherwise undefined.
   */
  record(task: string, verdict: Verdict, now: number, attemptKey?: string): Circuit | undefined {
    if (!this.enabled) return undefined;
    const wasProbe = attemptKey !== undefined && this.probes.get(task) === attemptKey;
    if (wasProbe) this.probes.delete(task);
    if (verdict === "neutral") return undefined;
    const c = this.circuits.get(task) ?? { task, state: "closed" as const, failures: 0 };
    this.circuits.set(task, c);
    if (verdict === "success") {
      c.failures = 0;
      if (c.state === "closed") return undefined;
      if (c.state === "half_open" && !wasProbe) return undefined; // a straggler; the probe decides
      return this.transition(c, "closed", now);
    }
    c.failures++;
    if (c.state === "half_open" && wasProbe) return this.transition(c, "open", now);
    if (c.state === "closed" && c.failures >= this.config.threshold) return this.transition(c, "open", now);
    return undefined;
  }

  private transition(c: Circuit, to: CircuitStateName, now: number): Circuit {
    c.state = to;
    if (to === "open") {
      c.openedAt = now;
      c.probeAt = now + this.config.cooldownMs;
    } else if (to === "closed") {
      c.probeAt = undefined;
    }
    return { ...c };
  }

  /** True when attempts of `task` must not be handed out by normal claims (probes go out through takeProbe). */
  blocked(task: string): boolean {
    const c = this.circuits.get(task);
    return c !== undefined && c.state !== "closed";
  }

  /**
   * Tasks whose cool-down is over: one attempt each may go out as a probe. A
   * probe that never reports (its worker gone) is replaced one cool-down later.
   */
  dueProbes(now: number): string[] {
    const out: string[] = [];
    for (const c of this.circuits.values()) if (c.state !== "closed" && now >= (c.probeAt ?? Infinity)) out.push(c.task);
    return out;
  }

  /**
   * The attempt `attemptKey` of `task` goes out as the probe (this process won
   * it until `nextProbeAt`): the circuit is half-open until its outcome.
   */
  takeProbe(task: string, attemptKey: string | undefined, nextProbeAt: number): Circuit {
    const c = this.circuits.get(task)!;
    if (attemptKey) this.probes.set(task, attemptKey);
    c.state = "half_open";
    c.probeAt = nextProbeAt;
    return { ...c };
  }

  /**
   * Adopts a state another server process persisted, unless what this process
   * knows is as new: a transition of ours still on its way to the database
   * (`saving`), or a row no newer than the one we wrote.
   */
  adopt(remote: Circuit): void {
    const mine = this.circuits.get(remote.task);
    if (mine && (this.saving.has(remote.task) || (mine.updatedAt ?? 0) >= (remote.updatedAt ?? 0))) return;
    if (mine && mine.state === remote.state && mine.probeAt === remote.probeAt) return;
    this.circuits.set(remote.task, { ...remote, failures: Math.max(remote.failures, mine?.failures ?? 0) });
  }

  /** Transitions being written, by task (see adopt). */
  private readonly saving = new Map<string, number>();

  /** Marks a transition as being written; call `saved` with the row's time once it is. */
  savingStarted(task: string): void {
    this.saving.set(task, (this.saving.get(task) ?? 0) + 1);
  }

  saved(task: string, updatedAt: number | undefined): void {
    const n = (this.saving.get(task) ?? 1) - 1;
    if (n > 0) this.saving.set(task, n);
    else this.saving.delete(task);
    const c = this.circuits.get(task);
    if (c && updatedAt !== undefined) c.updatedAt = Math.max(c.updatedAt ?? 0, updatedAt);
  }

  /** The earliest time a probe becomes due, if any (to wake up then). */
  nextProbeAt(): number | undefined {
    let next: number | undefined;
    for (const c of this.circuits.values()) if (c.state !== "closed" && c.probeAt !== undefined && (next === undefined || c.probeAt < next)) next = c.probeAt;
    return next;
  }

  list(): Circuit[] {
    return [...this.circuits.values()].map((c) => ({ ...c }));
  }
}
