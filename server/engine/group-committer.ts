// Group commit: items arriving from many streams and calls are written
// together. While one batch is being committed, new items wait and form the
// next batch, so an idle server commits each item at once (low latency) and
// a busy one commits hundreds per transaction (high throughput) with no
// timer in between.

export class GroupCommitter<T> {
  private pending: T[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly flush: (items: T[]) => Promise<void>,
    private readonly maxBatch = 2000,
  ) {}

  add(item: T): void {
    this.pending.push(item);
    if (!this.running) void this.loop();
  }

  addAll(items: T[]): void {
    if (items.length === 0) return;
    this.pending.push(...items);
    if (!this.running) void this.loop();
  }

  /** Puts items back at the front (a failed batch to retry). */
  retry(items: T[]): void {
    this.pending.unshift(...items);
  }

  get size(): number {
    return this.pending.length;
  }

  /** Resolves once nothing is pending or being committed. */
  idle(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.pending.length) {
        const batch = this.pending.splice(0, this.maxBatch);
        await this.flush(batch);
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
