// `pipewright workers`, `status` and `breakers`: the server's own state, from
// AdminService (a token with the admin scope when tokens are on).

import { Command, Option } from "commander";
import { AdminService, CircuitState, WorkerSessionState, createClient } from "@pipewright/protocol";
import { formatTime, keyValues, runDuration, table } from "./output.js";
import type { Io } from "./io.js";
import { withConnection, type ConnectionOptions } from "./connection.js";

/** Adds the admin verbs; `address` and `output` make the options every client verb takes. */
export function addAdminCommands(program: Command, io: Io, address: () => Option, output: () => Option): void {
  program
    .command("workers")
    .description("the workers connected to the server")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withAdmin(opts, async (admin) => {
        const { workers } = await admin.listWorkers({});
        if (opts.output === "json")
          return io.out(
            `${JSON.stringify(
              workers.map((w) => ({
                ...w,
                $typeName: undefined,
                connectTime: formatTime(w.connectTime),
                lastSeenTime: formatTime(w.lastSeenTime),
                state: WorkerSessionState[w.state].toLowerCase(),
                attempts: w.attempts.map((a) => ({ runId: a.runId, step: a.step, attempt: a.attempt, task: a.task, startTime: formatTime(a.startTime) })),
              })),
              null,
              2,
            )}\n`,
          );
        const now = Date.now();
        io.out(
          `${table(
            ["ID", "NAME", "TASKS", "QUEUES", "SLOTS", "CONNECTED", "LAST SEEN", "STATE", "PROCESS"],
            workers.map((w) => [
              w.workerId,
              w.name,
              w.taskNames.length > 4 ? `${w.taskNames.slice(0, 4).join(",")} +${w.taskNames.length - 4}` : w.taskNames.join(","),
              w.queues.map((q) => q || "default").join(","),
              `${w.slotsUsed}/${w.slots}`,
              runDuration(w.connectTime, undefined, now) + " ago",
              runDuration(w.lastSeenTime, undefined, now) + " ago",
              WorkerSessionState[w.state].toLowerCase(),
              w.processId.slice(0, 8),
            ]),
          )}\n`,
        );
      }),
    );

  program
    .command("status")
    .description("the server process's status")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withAdmin(opts, async (admin) => {
        const s = await admin.getServerStatus({});
        const pairs: [string, string][] = [
          ["process", s.processId],
          ["started", formatTime(s.startTime)],
          ["workers", String(s.workers)],
          ["active runs", String(s.activeRuns)],
          ["stale results", String(s.staleResults)],
          ["requeued attempts", String(s.requeuedAttempts)],
          ["timed out attempts", String(s.timedOutAttempts)],
          ["event loop max delay", `${Number(s.eventLoopMaxDelay?.seconds ?? 0n) * 1000 + Math.round((s.eventLoopMaxDelay?.nanos ?? 0) / 1e6)} ms`],
          ["busy refusals", String(s.busyRefusals)],
          ["runs parked, unparked", `${s.runsParked}, ${s.runsUnparked}`],
        ];
        io.out(opts.output === "json" ? `${JSON.stringify(Object.fromEntries(pairs), null, 2)}\n` : `${keyValues(pairs)}\n`);
      }),
    );

  program
    .command("breakers")
    .description("the circuit breakers of task names")
    .addOption(address())
    .addOption(output())
    .action((opts) =>
      withAdmin(opts, async (admin) => {
        const { breakers } = await admin.listCircuitBreakers({});
        const rows = breakers.map((b) => ({
          task: b.task,
          state: CircuitState[b.state].toLowerCase(),
          failures: b.consecutiveFailures,
          opened: formatTime(b.openedTime),
          probe: formatTime(b.probeTime),
        }));
        if (opts.output === "json") return io.out(`${JSON.stringify(rows, null, 2)}\n`);
        io.out(
          `${table(
            ["TASK", "STATE", "FAILURES", "OPENED", "NEXT PROBE"],
            rows.map((r) => [r.task, r.state, String(r.failures), r.opened, r.probe]),
          )}\n`,
        );
      }),
    );
}

function withAdmin(opts: ConnectionOptions, body: (admin: ReturnType<typeof createClient<typeof AdminService>>) => Promise<void>): Promise<void> {
  return withConnection(opts, (address, options) => createClient(AdminService, address, options), body);
}
