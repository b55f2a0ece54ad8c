// Retention: finished runs older than --retention-hours are deleted, with
// their events, payloads, inbox and queue rows, by every server process on a
// jittered timer. Each sweep deletes a batch of runs per statement (one
// transaction, rows locked FOR UPDATE SKIP LOCKED: processes sweeping at once
// take different runs and never wait on each other or on anybody's work),
// until a batch comes back short. Active runs are never deleted.

import type { Metrics } from "../observe/metrics.js";
import type { Logger } from "../observe/logger.js";
import type { Sql } from "../store/database.js";
import { deleteFinishedRunsBefore } from "../store/run-store.js";

export interface RetentionConfig {
  /** Finished runs older than this are deleted; 0: kept forever (no sweep). */
  hours: number;
  /** Time between sweeps (default 60 s), each jittered by up to a quarter either way. */
  intervalMs?: number;
  /** Runs deleted per statement (default 500). */
  batchSize?: number;
  log: Logger;
  metrics?: Metrics;
  /** Told which runs went (and the cutoff), so that no cache answers for them (RunEngine.forgetRuns / forgetFinishedBefore). */
  forget?: (uids: string[], cutoffMs: number) => void;
}

export const DEFAULT_RETENTION_INTERVAL_MS = 60_000;
export const DEFAULT_RETENTION_BATCH = 500;

export class RetentionSweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;
  private stopped = false;

  constructor(
    private readonly sql: Sql,
    private readonly config: RetentionConfig,
  ) {}

  get enabled(): boolean {
    return this.config.hours > 0;
  }

  /** Sweeps every interval (jittered) until stop(); does nothing when retention is 0. */
  start(): void {
    if (!this.enabled || this.stopped) return;
    const base = this.config.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.timer = setTimeout(() => {
      void this.sweep().finally(() => this.start());
    }, delay);
    this.timer.unref();
  }

  /** Stops the timer and waits for a sweep in progress to finish its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  /** One sweep now: batches until one comes back short. Returns the runs deleted; errors are logged, not thrown. */
  sweep(): Promise<number> {
    if (!this.enabled) return Promise.resolve(0);
    return (this.running ??= this.sweepBatches().finally(() => (this.running = undefined)));
  }

  private async sweepBatches(): Promise<number> {
    const { hours, log } = this.config;
    const batch = this.config.batchSize ?? DEFAULT_RETENTION_BATCH;
    const started = Date.now();
    let deleted = 0;
    try {
      for (;;) {
        const uids = await deleteFinishedRunsBefore(this.sql, hours, batch);
        deleted += uids.length;
        this.config.metrics?.runsDeleted.inc(uids.length);
        this.config.forget?.(uids, Date.now() - hours * 3600_000);
        if (uids.length < batch || this.stopped) break;
        await new Promise((resolve) => setImmediate(resolve)); // let others' work through between batches
      }
    } catch (err) {
      log.warn({ err, runs_deleted: deleted }, `retention sweep: ${(err as Error).message}`);
    }
    if (deleted > 0)
      log.info(
        { runs_deleted: deleted, retention_hours: hours, sweep_ms: Date.now() - started },
        `deleted ${deleted} runs finished more than ${hours} hours ago`,
      );
    return deleted;
  }
}
