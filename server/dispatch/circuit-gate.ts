// The circuit breakers (server/core/circuit-breaker.ts, pure) put to work
// for dispatch: outcomes of attempts go in, transitions are saved for the
// other server processes and theirs adopted, tasks whose circuit is not
// closed are held back from claims and reservations, and the claim loop is
// woken when a circuit closes or its probe becomes due. Each namespace has its
// own breaker per task name: a breaker's key is the task's name in its
// namespace (namespacedKey, @pipewright/protocol), which the core and the
// circuits table hold as the "task".

import { keyBeside, namespacedKey, taskLabel } from "@pipewright/protocol";
import { CircuitBreakers, type Circuit, type CircuitConfig, type Verdict } from "../core/circuit-breaker.js";
import type { DispatchPort } from "../engine/ports.js";
import type { Sql } from "../store/database.js";
import { claimProbe, loadCircuits, saveCircuit } from "../store/circuit-store.js";
import type { HeldAttempt } from "./worker-session.js";
import type { Logger } from "../observe/logger.js";

export class CircuitGate {
  private readonly breakers: CircuitBreakers;

  constructor(
    private readonly sql: Sql,
    config: CircuitConfig,
    private readonly log: Logger,
    private readonly wake: Pick<DispatchPort, "poke" | "pokeAt">,
  ) {
    this.breakers = new CircuitBreakers(config);
  }

  get enabled(): boolean {
    return this.breakers.enabled;
  }

  /** Whether attempts of `task` in `namespace` must wait in the queue (only a probe goes out). */
  blocked(namespace: string, task: string): boolean {
    return this.breakers.blocked(namespacedKey(namespace, task));
  }

  /** The same for `task` on the queue of this key (its namespace's breaker): one string operation on the dispatch path. */
  blockedOn(queueKey: string, task: string): boolean {
    return this.breakers.blocked(keyBeside(queueKey, task));
  }

  /** The circuits known here (copies), for AdminService.ListCircuitBreakers. */
  list(): Circuit[] {
    return this.breakers.list();
  }

  /** Feeds an attempt's outcome (held by a worker of `namespace`) to its task's breaker. */
  record(namespace: string, held: HeldAttempt, verdict: Verdict): void {
    const changed = this.breakers.record(namespacedKey(namespace, held.task), verdict, Date.now(), `${held.runUid}/${held.step}/${held.attempt}`);
    if (changed) this.persist(changed);
  }

  /** Breakers (their keys) whose probe may go out now. */
  dueProbes(now: number): string[] {
    return this.breakers.dueProbes(now);
  }

  /**
   * Wins the right to send `task`'s probe, shared by every process on the
   * database: the time of the next probe, or undefined when another process
   * sends this one.
   */
  claimProbe(task: string): Promise<number | undefined> {
    return claimProbe(this.sql, task, this.breakers.config.cooldownMs);
  }

  /** The attempt `attemptKey` (none: nothing was queued) went out as `task`'s probe. */
  takeProbe(task: string, attemptKey: string | undefined, nextProbeAt: number): void {
    this.persist(this.breakers.takeProbe(task, attemptKey, nextProbeAt));
  }

  /** Shares the breakers' states with the other server processes. */
  async sync(): Promise<void> {
    if (!this.breakers.enabled) return;
    for (const c of await loadCircuits(this.sql)) this.breakers.adopt(c);
    const next = this.breakers.nextProbeAt();
    if (next !== undefined) this.wake.pokeAt(next);
  }

  private persist(c: Circuit): void {
    // Transitions are rare (a downstream service failing or coming back) and each one changes what workers get: warn and info.
    const task = taskLabel(c.task);
    if (c.state === "open")
      this.log.warn({ task, failures: c.failures, circuit: "open" }, `circuit of task ${task} opened after ${c.failures} failures in a row`);
    if (c.state === "closed") this.log.info({ task, circuit: "closed" }, `circuit of task ${task} closed`);
    this.breakers.savingStarted(c.task);
    saveCircuit(this.sql, c).then(
      (updatedAt) => this.breakers.saved(c.task, updatedAt),
      (err) => {
        this.breakers.saved(c.task, undefined);
        this.log.warn({ task, err }, `saving the circuit of ${task}: ${err.message}`);
      },
    );
    if (c.state === "closed") this.wake.poke();
    else if (c.probeAt !== undefined) this.wake.pokeAt(c.probeAt);
  }
}
