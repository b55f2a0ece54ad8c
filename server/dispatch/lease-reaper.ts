// The safety net for attempts whose worker vanished without its stream
// breaking cleanly, or whose server process died: each process refreshes its
// own liveness row and puts back attempts held by silent processes or past
// their lease. Broken streams are handled at once by the dispatcher; this
// catches the rest within a few seconds.

import type { Sql } from "../store/database.js";
import { pruneProcesses, touchProcess, type Served } from "../store/process-registry.js";
import { reapLostAttempts, type LostAttempt } from "../store/task-queue.js";
import type { Logger } from "../observe/logger.js";

export interface LeaseReaperConfig {
  processId: string;
  /** How often to refresh this process's row and look for lost attempts. */
  intervalMs: number;
  /** A process silent for this long is considered dead. */
  processSilenceMs: number;
  log: Logger;
  /** Called with the attempts put back (to claim them at once, or fail those lost too often). */
  onRequeued: (lost: LostAttempt[]) => void;
  /** What this process's workers serve, written with its heartbeat (see Dispatcher.served). */
  serves?: () => Served[];
}

export class LeaseReaper {
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly sql: Sql,
    private readonly config: LeaseReaperConfig,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.config.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await touchProcess(this.sql, this.config.processId, this.config.serves?.() ?? []);
      const lost = await reapLostAttempts(this.sql, this.config.processSilenceMs);
      if (lost.length > 0) {
        this.config.log.warn({ attempts: lost.length }, `re-queued ${lost.length} attempts whose worker or server process went silent`);
        this.config.onRequeued(lost);
      }
      await pruneProcesses(this.sql, 24 * 3600_000);
    } catch (err) {
      this.config.log.warn({ err }, `lease reaper: ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
  }
}
