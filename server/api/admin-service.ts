// pipewright.v1.AdminService: the server's own counters and its circuit breakers.

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  CircuitBreakerSchema,
  CircuitState,
  GetServerStatusResponseSchema,
  ListCircuitBreakersResponseSchema,
  ListWorkersResponseSchema,
  RunningAttemptSchema,
  splitNamespacedKey,
  WorkerInfoSchema,
  WorkerSessionState,
} from "@pipewright/protocol";
import type { ServiceImpl } from "@pipewright/protocol";
import type { CircuitStateName } from "../core/circuit-breaker.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { RunEngine } from "../engine/run-engine.js";

/** WorkerInfo.attempts lists at most this many per worker (slots_used counts all). */
const MAX_ATTEMPTS_LISTED = 100;

const STATE: Record<CircuitStateName, CircuitState> = { closed: CircuitState.CLOSED, open: CircuitState.OPEN, half_open: CircuitState.HALF_OPEN };

/** What the admin service reports besides the engine's and the dispatcher's counters. */
export interface ProcessHealth {
  /** Longest event-loop delay since start, in ms. */
  eventLoopMaxDelayMs(): number;
  busyRefusals(): number;
}

export function adminService(
  engine: RunEngine,
  dispatcher: Dispatcher,
  processId: string,
  startedAt: number,
  health: ProcessHealth,
): ServiceImpl<typeof AdminService> {
  return {
    async getServerStatus() {
      const runs = engine.stats();
      const dispatch = dispatcher.stats();
      return create(GetServerStatusResponseSchema, {
        processId,
        workers: dispatcher.workerCount,
        activeRuns: runs.activeRuns,
        staleResults: BigInt(runs.staleResults + dispatch.staleResults),
        requeuedAttempts: BigInt(dispatch.requeued),
        timedOutAttempts: BigInt(runs.timedOut + dispatch.timedOut),
        startTime: timestampFromMs(startedAt),
        eventLoopMaxDelay: durationFromMs(Math.round(health.eventLoopMaxDelayMs())),
        busyRefusals: BigInt(health.busyRefusals()),
        runsParked: BigInt(runs.parked),
        runsUnparked: BigInt(runs.unparked),
      });
    },

    async listWorkers() {
      const workers = dispatcher.workers().map((s) =>
        create(WorkerInfoSchema, {
          workerId: s.id,
          name: s.hello.workerName,
          taskNames: [...s.tasks].sort(),
          namespace: s.namespace,
          queues: [...s.queues].map((q) => splitNamespacedKey(q).name).sort(),
          slots: s.slots,
          slotsUsed: s.held.size,
          attempts: [...s.held.values()]
            .sort((a, b) => a.deliveredAt - b.deliveredAt)
            .slice(0, MAX_ATTEMPTS_LISTED)
            .map((h) =>
              create(RunningAttemptSchema, { runId: h.runUid, step: h.step, attempt: h.attempt, task: h.task, startTime: timestampFromMs(h.deliveredAt) }),
            ),
          connectTime: timestampFromMs(s.connectedAt),
          lastSeenTime: timestampFromMs(s.lastSeen),
          processId,
          state: s.state === "draining" ? WorkerSessionState.DRAINING : WorkerSessionState.ACTIVE,
        }),
      );
      return create(ListWorkersResponseSchema, { workers });
    },

    async listCircuitBreakers() {
      await dispatcher.syncCircuits();
      const breakers = dispatcher
        .circuits()
        .sort((a, b) => a.task.localeCompare(b.task))
        .map((c) =>
          create(CircuitBreakerSchema, {
            task: splitNamespacedKey(c.task).name,
            namespace: splitNamespacedKey(c.task).namespace,
            state: STATE[c.state],
            consecutiveFailures: c.failures,
            openedTime: c.openedAt !== undefined ? timestampFromMs(c.openedAt) : undefined,
            probeTime: c.state !== "closed" && c.probeAt !== undefined ? timestampFromMs(c.probeAt) : undefined,
          }),
        );
      return create(ListCircuitBreakersResponseSchema, { breakers });
    },
  };
}
