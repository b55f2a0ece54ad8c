// Every server process runs one EventSweeper: every couple of seconds
// (jittered) it completes events stored more than a few seconds ago and still
// untriggered (their publisher died between storing and starting the runs),
// and about once a minute it deletes events past the retention, so the table
// stays bounded.
//
// The claim is FOR UPDATE SKIP LOCKED inside a transaction held while the
// events are triggered: processes sweeping at once take different events. Two
// processes finishing the same event anyway (a publisher slower than the
// threshold) start nothing twice: the runs' request ids are derived from the
// trigger and the event (event-publisher.ts).

import type { Logger } from "../observe/logger.js";
import type { Sql } from "../store/database.js";
import { claimUntriggered, deleteEventsBefore } from "../store/events.js";
import type { EventPublisher } from "./event-publisher.js";

/** An event untriggered this long is taken to be left by a dead process (a live publisher triggers within milliseconds). */
export const DEFAULT_UNTRIGGERED_AFTER_MS = 5000;
/** Time between looks for untriggered events (jittered by a quarter either way). */
export const DEFAULT_SWEEP_INTERVAL_MS = 2000;
/** Events are kept this long when the server keeps runs forever (--retention-hours 0): a week. */
export const DEFAULT_EVENT_RETENTION_HOURS = 7 * 24;
/** Events claimed, and events deleted, per statement. */
const BATCH = 100;
/** Retention runs every this many sweeps (about a minute). */
const RETENTION_EVERY = 30;

export interface EventSweeperConfig {
  /** The server's --retention-hours; 0 (runs kept forever): DEFAULT_EVENT_RETENTION_HOURS. */
  retentionHours: number;
  untriggeredAfterMs?: number;
  intervalMs?: number;
  log: Logger;
}

export class EventSweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private sweeps = 0;

  constructor(
    private readonly sql: Sql,
    private readonly publisher: EventPublisher,
    private readonly config: EventSweeperConfig,
  ) {}

  get retentionHours(): number {
    return this.config.retentionHours > 0 ? this.config.retentionHours : DEFAULT_EVENT_RETENTION_HOURS;
  }

  start(): void {
    if (this.stopped) return;
    const base = this.config.intervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.timer = setTimeout(
      () => {
        this.running = this.sweep().finally(() => {
          this.running = undefined;
          this.start();
        });
      },
      Math.round(base * (0.75 + Math.random() * 0.5)),
    );
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep now (errors are logged, not thrown): untriggered events completed, and every RETENTION_EVERY sweeps old events deleted. */
  async sweep(): Promise<void> {
    try {
      await this.completeUntriggered();
      if (this.sweeps++ % RETENTION_EVERY === 0) await this.deleteOld();
    } catch (err) {
      this.config.log.warn({ err }, `event sweep: ${(err as Error).message}`);
    }
  }

  /** Completes the events left untriggered; returns how many. */
  async completeUntriggered(): Promise<number> {
    const threshold = this.config.untriggeredAfterMs ?? DEFAULT_UNTRIGGERED_AFTER_MS;
    return this.sql.begin(async (tx) => {
      const rows = await claimUntriggered(tx, threshold, BATCH);
      for (const row of rows) {
        if (this.stopped) break;
        const fields = { namespace: row.namespace, event_id: row.eventId, event: row.name };
        try {
          await this.publisher.trigger(row, tx);
          this.config.log.warn(fields, `completed event ${row.eventId}, left untriggered by its publisher`);
        } catch (err) {
          // One event failing (the next sweep tries it again) does not hold back the others.
          this.config.log.warn({ ...fields, err }, `event ${row.eventId} not completed yet: ${(err as Error).message}`);
        }
      }
      return rows.length;
    });
  }

  /** Deletes events past the retention; returns how many. */
  async deleteOld(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await deleteEventsBefore(this.sql, this.retentionHours, BATCH);
      total += n;
      if (n < BATCH || this.stopped) return total;
    }
  }
}
