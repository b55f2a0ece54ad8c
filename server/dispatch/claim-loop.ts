// Claims ready rows of the task queue for local sessions with free slots.
// One claim loop runs at a time: pokes that arrive while it runs make it go
// round once more (however many came), so a burst of commits and results
// costs one extra pass, not one each, and none is missed. Retries due later
// wake it at their time (pokeAt); a periodic poke from the dispatcher catches
// what nobody poked about. Rows committed already claimed for a local worker
// (the engine's fast path) never come through here.

import { splitNamespacedKey, taskLabel } from "@pipewright/protocol";
import { setLongTimeout, type LongTimeout } from "@pipewright/protocol";
import type { Sql } from "../store/database.js";
import { isUnavailable } from "../store/database-errors.js";
import * as queue from "../store/task-queue.js";
import { pushAll } from "../core/arrays.js";
import type { CircuitGate } from "./circuit-gate.js";
import type { Delivery } from "./delivery.js";
import type { WorkerRegistry } from "./worker-registry.js";
import type { Logger } from "../observe/logger.js";

export interface ClaimLoopConfig {
  processId: string;
  /** Lease given with each attempt; heartbeats renew it. */
  leaseMs: number;
  log: Logger;
}

export class ClaimLoop {
  private claiming = false;
  private pokedWhileClaiming = false;
  /** The earliest known time a delayed row becomes ready (retry backoff). */
  private wakeAt?: number;
  private wakeTimer?: LongTimeout;
  /** Claims whose answers were lost with their connection (see claim). */
  private readonly doubtfulClaims: { workerId: string; token: string }[] = [];

  constructor(
    private readonly sql: Sql,
    private readonly config: ClaimLoopConfig,
    private readonly registry: WorkerRegistry,
    private readonly circuits: CircuitGate,
    private readonly delivery: Delivery,
    /** Takes attempts put back because their session closed while they were being claimed for it. */
    private readonly lost: (attempts: queue.LostAttempt[]) => void,
  ) {}

  /** Claims now, or once more after the claim under way. */
  poke(): void {
    if (this.claiming) {
      this.pokedWhileClaiming = true;
      return;
    }
    void this.run();
  }

  /** Claims at `time` (a retry's backoff ends then), unless a wake-up is already due by then. */
  pokeAt(time: number): void {
    if (this.wakeAt !== undefined && this.wakeAt <= time) return;
    this.wakeTimer?.clear();
    this.wakeAt = time;
    const wake = () => {
      this.wakeAt = undefined;
      this.poke();
    };
    this.wakeTimer = setLongTimeout(wake, time - Date.now(), { unref: true });
  }

  private async run(): Promise<void> {
    this.claiming = true;
    try {
      do {
        this.pokedWhileClaiming = false;
        await this.undoDoubtfulClaims();
        if (this.circuits.enabled && !this.registry.draining) await this.sendProbes();
        for (const s of [...this.registry.all()]) {
          if (this.registry.draining || s.free <= 0) continue;
          const tasks = [...s.tasks].filter((t) => !this.circuits.blocked(s.namespace, t));
          if (tasks.length === 0) continue;
          // The slots being claimed for are reserved meanwhile, so that the
          // engine's fast path cannot promise them a second time.
          const claimed: queue.ClaimedTask[] = [];
          for (const queueName of s.queues) {
            const limit = s.free;
            if (limit <= 0) break;
            s.reserved += limit;
            try {
              pushAll(claimed, await this.claim({ workerId: s.id, tasks, queue: queueName, limit }));
            } finally {
              s.reserved -= limit;
            }
            if (s.state === "closed") break;
            for (const c of claimed.splice(0)) this.delivery.send(s, c);
          }
          if (s.state === "closed") this.lost(await queue.requeueWorker(this.sql, s.id));
        }
      } while (this.pokedWhileClaiming);
    } catch (err) {
      this.config.log.warn({ err }, `claiming tasks: ${(err as Error).message}`);
    } finally {
      this.claiming = false;
    }
  }

  /**
   * A claim, named by a token. If its connection breaks, PostgreSQL may have
   * committed it all the same: its rows would stay held by a worker that
   * never got them. They are put back (by token) once the database answers.
   */
  private async claim(r: Pick<queue.ClaimRequest, "workerId" | "tasks" | "queue" | "limit">): Promise<queue.ClaimedTask[]> {
    const token = queue.claimToken();
    try {
      return await queue.claim(this.sql, { ...r, processId: this.config.processId, leaseMs: this.config.leaseMs, token });
    } catch (err) {
      if (isUnavailable(err)) this.doubtfulClaims.push({ workerId: r.workerId, token });
      throw err;
    }
  }

  /** Undoes the claims whose answers were lost (see claim); throws, keeping them, while the database is away. */
  private async undoDoubtfulClaims(): Promise<void> {
    while (this.doubtfulClaims.length) {
      const { workerId, token } = this.doubtfulClaims[0];
      const back = await queue.undoClaim(this.sql, workerId, token);
      this.doubtfulClaims.shift();
      if (back)
        this.config.log.warn(
          { worker_id: workerId, attempts: back },
          `${back} attempts claimed for worker ${workerId} as the database went away were put back (the claim's answer was lost)`,
        );
    }
  }

  /** Hands out one probe attempt for each circuit whose cool-down is over (if this process wins it). */
  private async sendProbes(): Promise<void> {
    for (const key of this.circuits.dueProbes(Date.now())) {
      const { namespace, name: task } = splitNamespacedKey(key);
      const s = [...this.registry.all()].find((x) => x.free > 0 && x.namespace === namespace && x.tasks.has(task));
      if (!s) continue;
      const nextProbeAt = await this.circuits.claimProbe(key);
      if (nextProbeAt === undefined) continue; // another process sends it
      s.reserved++;
      let probe: queue.ClaimedTask | undefined;
      try {
        for (const queueName of s.queues) {
          [probe] = await this.claim({ workerId: s.id, tasks: [task], queue: queueName, limit: 1 });
          if (probe) break;
        }
      } finally {
        s.reserved--;
      }
      this.circuits.takeProbe(key, probe ? `${probe.runUid}/${probe.step}/${probe.attempt}` : undefined, nextProbeAt);
      if (probe) {
        this.config.log.info(
          { task: taskLabel(key), circuit: "half-open", run_id: probe.runUid, step: probe.step, attempt: probe.attempt, worker_id: s.id },
          `circuit of task ${taskLabel(key)}: probe sent`,
        );
        if (s.state === "closed") this.lost(await queue.requeueWorker(this.sql, s.id));
        else this.delivery.send(s, probe);
      }
    }
  }
}
