// Whether PostgreSQL can be reached right now, for health and for answering
// UNAVAILABLE at once instead of letting calls queue behind a dead database.
//
// The probe is `select 1` on a connection of its own, not one of the pool's:
// behind a busy pool a probe would measure the pool's queue (a big group
// commit holds connections for seconds), not the database. One connection and
// two tiny queries a second while up: no measurable load. A crash closes the
// probe's socket, which triggers a probe at once (down seen in ~50-100 ms);
// a hang (a partitioned network) is caught by the probe's timeout.

import postgres from "postgres";
import type { Logger } from "../observe/logger.js";

export interface DatabaseMonitorOptions {
  /** Probe period while the database is up (default 500 ms). */
  upIntervalMs?: number;
  /** Probe period while it is down: how soon "back" is seen (default 100 ms). */
  downIntervalMs?: number;
  /** A probe slower than this counts as failed (default 2,000 ms). */
  timeoutMs?: number;
  /** Where "database unreachable" (warn) and "database reachable again" (info) go. */
  log?: Logger;
}

/**
 * @example
 *   const monitor = new DatabaseMonitor(url, { log });
 *   monitor.onChange((up) => health.setStatus("", up ? "SERVING" : "NOT_SERVING"));
 *   await monitor.start();
 *   if (!monitor.up) throw new PipewrightError("UNAVAILABLE", "...");
 */
export class DatabaseMonitor {
  /** False from the second failed probe in a row (or one that timed out) until a probe succeeds. */
  up = true;
  private readonly sql: postgres.Sql;
  private readonly listeners: ((up: boolean) => void)[] = [];
  private failures = 0;
  private timer?: NodeJS.Timeout;
  private probing?: Promise<"ok" | "failed">;
  private ticking = false;
  private stopped = false;
  private since = Date.now();

  constructor(
    url: string,
    private readonly options: DatabaseMonitorOptions = {},
  ) {
    this.sql = postgres(url, {
      max: 1,
      fetch_types: false,
      onnotice: () => {},
      // A refused connection is retried after 100 ms, never the driver's
      // default of up to 20 s: the probe itself sets the pace.
      backoff: () => 0.1,
      connect_timeout: Math.ceil((options.timeoutMs ?? 2000) / 1000),
      connection: { application_name: "pipewright-monitor" },
      // The probe's socket closed: PostgreSQL may be gone. Look now rather than at the next tick.
      onclose: () => {
        if (this.up) this.schedule(0);
      },
    });
  }

  /** Probes once, then keeps probing (a first failure is looked at again at once). */
  async start(): Promise<void> {
    await this.tick();
  }

  /**
   * Probes now (joining a probe in flight) and resolves with `up` after it,
   * within `waitMs`. For a caller about to be refused: PostgreSQL may be back
   * since the last probe (up to 100 ms ago), and a refused connect to a dead
   * server answers in milliseconds.
   */
  async recheck(waitMs = 500): Promise<boolean> {
    if (this.stopped || this.up) return this.up;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), waitMs)));
    const outcome = await Promise.race([this.probe(), late]).finally(() => clearTimeout(timer));
    if (outcome === "ok" && !this.stopped) {
      this.failures = 0;
      this.set(true);
    }
    return this.up;
  }

  /** Called with the new value each time `up` changes. */
  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.sql.end({ timeout: 0 }).catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    clearTimeout(this.timer);
    let outcome: "ok" | "failed" | "timeout";
    try {
      outcome = await this.probe();
    } finally {
      this.ticking = false;
    }
    if (this.stopped) return;
    // One failure may be a single connection killed (pg_terminate_backend):
    // look again at once and call it down only if that fails too. A probe
    // that timed out already waited long enough.
    this.failures = outcome === "ok" ? 0 : outcome === "timeout" ? this.failures + 2 : this.failures + 1;
    if (outcome === "ok") this.set(true);
    else if (this.failures >= 2) this.set(false);
    this.schedule(this.failures === 1 ? 0 : this.up ? (this.options.upIntervalMs ?? 500) : (this.options.downIntervalMs ?? 100));
  }

  /** `select 1`, within the timeout (a slow probe is not started twice: the next one waits on it). */
  private probe(): Promise<"ok" | "failed" | "timeout"> {
    const timeoutMs = this.options.timeoutMs ?? 2000;
    this.probing ??= this.sql`select 1`
      .then(
        () => "ok" as const,
        () => "failed" as const,
      )
      .finally(() => (this.probing = undefined));
    let timer: NodeJS.Timeout | undefined;
    // After the event loop was blocked for longer than the timeout, timers run
    // before the socket's answer is read: give I/O one turn before calling it late.
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => setImmediate(() => resolve("timeout")), timeoutMs)));
    return Promise.race([this.probing, timedOut]).finally(() => clearTimeout(timer));
  }

  private set(up: boolean): void {
    if (this.up === up) return;
    const ms = Date.now() - this.since;
    this.up = up;
    this.since = Date.now();
    if (up) this.options.log?.info({ down_ms: ms }, `database reachable again (after ${ms} ms)`);
    else this.options.log?.warn({ up_ms: ms }, "database unreachable: health NOT_SERVING, RunService calls answer UNAVAILABLE");
    for (const l of this.listeners) {
      try {
        l(up);
      } catch (err) {
        this.options.log?.error({ err }, `database monitor listener failed: ${(err as Error).message}`);
      }
    }
  }
}
