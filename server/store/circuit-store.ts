// SQL for circuit breakers: their state transitions, shared by every server
// process on the database, and the claim of a half-open probe.

import type { Circuit, CircuitStateName } from "../core/circuit-breaker.js";
import type { Sql } from "./database.js";

const CODE: Record<CircuitStateName, number> = { closed: 1, open: 2, half_open: 3 };
const NAME: Record<number, CircuitStateName> = { 1: "closed", 2: "open", 3: "half_open" };

/** Saves a transition; returns the row's time. */
export async function saveCircuit(sql: Sql, c: Circuit): Promise<number> {
  const [row] = await sql<{ updated_at: Date }[]>`
    insert into circuit_breakers (task, state, consecutive_failures, opened_at, probe_at, updated_at)
    values (${c.task}, ${CODE[c.state]}, ${c.failures}, ${iso(c.openedAt)}::timestamptz, ${iso(c.probeAt)}::timestamptz, clock_timestamp())
    on conflict (task) do update set state = excluded.state, consecutive_failures = excluded.consecutive_failures,
      opened_at = excluded.opened_at, probe_at = excluded.probe_at, updated_at = clock_timestamp()
    returning updated_at`;
  return row.updated_at.getTime();
}

export async function loadCircuits(sql: Sql): Promise<Circuit[]> {
  const rows = await sql<{ task: string; state: number; consecutive_failures: number; opened_at: Date | null; probe_at: Date | null; updated_at: Date }[]>`
    select task, state, consecutive_failures, opened_at, probe_at, updated_at from circuit_breakers`;
  return rows.map((r) => ({
    task: r.task,
    state: NAME[r.state],
    failures: r.consecutive_failures,
    openedAt: r.opened_at?.getTime(),
    probeAt: r.probe_at?.getTime(),
    updatedAt: r.updated_at.getTime(),
  }));
}

/**
 * Takes the right to send the probe of a circuit whose cool-down is over:
 * exactly one server process wins it, and the next probe (should this one
 * never report, its worker gone) is due one cool-down later. Returns that
 * time, or undefined when another process won.
 */
export async function claimProbe(sql: Sql, task: string, cooldownMs: number): Promise<number | undefined> {
  const rows = await sql<{ probe_at: Date }[]>`
    update circuit_breakers set state = ${CODE.half_open}, probe_at = now() + ${cooldownMs} * interval '1 millisecond', updated_at = clock_timestamp()
    where task = ${task} and state in (${CODE.open}, ${CODE.half_open}) and probe_at <= now()
    returning probe_at`;
  return rows[0]?.probe_at.getTime();
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
