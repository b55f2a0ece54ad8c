// Commits whose outcome is unknown. When the connection breaks during a
// batch's statement (PostgreSQL crashed, the network dropped), the statement
// may have committed although no answer came back. The engine undoes the
// batch in memory as if nothing was written (that is its one safe guess about
// memory), and notes here what might be in the database anyway:
//
// - runs the batch created: if they exist, they are this process's (it wrote
//   them as their owner) and must be loaded, else nobody ever runs them (the
//   owner is alive, so no other process adopts them);
// - queue rows the batch wrote already claimed for a local worker (the fast
//   path): the worker never got them, so they go back to the queue (else they
//   wait for their lease, or forever if the worker's heartbeats renew it);
// - runs adopted from a dead process whose loading failed half-way.
//
// Once the database answers again, `settle` finds out and says which runs to
// load. Found by test/faults/postgres-crash-loop.test.ts: runs stuck for good
// after a crash-restart under load.

import type { Sql } from "../store/database.js";
import * as runs from "../store/run-store.js";
import * as queue from "../store/task-queue.js";

export class UnsureCommits {
  private readonly newRuns = new Set<string>();
  private readonly claims: queue.UndeliveredClaim[] = [];
  private readonly adopted = new Set<number>();

  get empty(): boolean {
    return this.newRuns.size === 0 && this.claims.length === 0 && this.adopted.size === 0;
  }

  /** A batch whose commit is in doubt: the runs it created, the rows it claimed for local workers. */
  note(newRunUids: string[], claims: queue.UndeliveredClaim[]): void {
    for (const uid of newRunUids) this.newRuns.add(uid);
    for (const c of claims) this.claims.push(c);
  }

  /** Runs this process took over but could not load. */
  noteAdopted(ids: number[]): void {
    for (const id of ids) this.adopted.add(id);
  }

  /**
   * Puts undelivered claims back in the queue and returns the ids of active
   * runs to load (owned by `owner`). Throws if the database is still away
   * (nothing is forgotten then).
   */
  async settle(sql: Sql, owner: string): Promise<{ load: number[]; requeued: number }> {
    const requeued = await queue.unclaimUndelivered(sql, this.claims);
    const created = await runs.activeRunIdsByUids(sql, [...this.newRuns], owner);
    const load = [...new Set([...created, ...this.adopted])];
    this.newRuns.clear();
    this.claims.length = 0;
    this.adopted.clear();
    return { load, requeued };
  }
}
