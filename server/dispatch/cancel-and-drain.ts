// Asking workers to stop: some attempts (a run cancelled, here or at another
// process), or everything at shutdown (drain). Both only ask: what the
// worker sends back still arrives as results, and what it still holds when
// its stream ends goes back to the queue like at any disconnect.

import { create } from "@bufbuild/protobuf";
import { ConnectResponseSchema, DrainRequestSchema } from "@pipewright/protocol";
import type { CancelledAttempt } from "../store/task-queue.js";
import type { WorkerRegistry } from "./worker-registry.js";
import type { HeldAttempt, WorkerSession } from "./worker-session.js";

/**
 * Tells the sessions holding these attempts to stop them. An attempt whose
 * worker is not known (a cancel relayed by another process) is looked for in
 * every session.
 */
export function cancelAttempts(registry: WorkerRegistry, attempts: CancelledAttempt[], reason: string): void {
  const bySession = new Map<WorkerSession, HeldAttempt[]>();
  for (const a of attempts) {
    const candidates = a.workerId ? [registry.get(a.workerId)] : [...registry.all()];
    for (const s of candidates) {
      if (!s) continue;
      for (const h of s.held.values()) {
        if (h.runId === a.runId && h.step === a.step) {
          let list = bySession.get(s);
          if (!list) bySession.set(s, (list = []));
          list.push(h);
        }
      }
    }
  }
  for (const [s, list] of bySession) s.cancel(list, reason);
}

/**
 * Asks every session to drain and waits (up to `graceMs`) until they hold
 * nothing. What is still held afterwards is re-queued by the workers'
 * disconnects (or by the lease reaper of another process).
 */
export async function drainSessions(registry: WorkerRegistry, graceMs: number): Promise<void> {
  for (const s of registry.all()) {
    s.state = s.state === "closed" ? "closed" : "draining";
    s.write(create(ConnectResponseSchema, { kind: { case: "drain", value: create(DrainRequestSchema, { reason: "server shutting down" }) } }));
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until && [...registry.all()].some((s) => s.held.size > 0)) {
    await new Promise((r) => setTimeout(r, 50));
  }
}
