// A clock for tests of pipelines that wait: time stands still while anything
// can run, and jumps to the next timer when nothing can. A pipeline that
// sleeps a day, or waits an hour for a signal, runs in milliseconds, and
// branches sleeping different times wake in the order real time would wake
// them (a clock that simply added each sleep would not: two branches sleeping
// 1 h at once would end at 2 h).
//
// @example
//   const clock = new VirtualClock(Date.parse("2026-12-01T00:00:00Z"));
//   const out = await runLocally(report.send().sleep(24 * 3600_000).continueWith(send), { tasks, clock });
//   clock.now(); // a day later

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
}

export class VirtualClock {
  private t: number;
  private readonly timers: Timer[] = [];
  private seq = 0;

  constructor(start = 0) {
    this.t = start;
  }

  /** The clock's time, ms since the epoch. */
  readonly now = (): number => this.t;

  /** Resolves when the clock reaches now + ms (at once for ms <= 0, after what can run now). */
  readonly sleep = (ms: number): Promise<void> => new Promise((fire) => this.at(this.t + Math.max(0, ms), fire));

  /** Calls `fire` when the clock reaches `at`. */
  at(at: number, fire: () => void): void {
    this.timers.push({ at: Math.max(at, this.t), seq: this.seq++, fire });
  }

  /**
   * Awaits `work`, moving the clock to the next timer whenever everything
   * else is waiting. Work that waits on something outside the clock (real
   * I/O) is given real time: the clock moves only once the process has had
   * nothing else to do for a turn of the event loop.
   */
  async drive<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    const done = work.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    void done;
    while (!settled) {
      await new Promise((r) => setImmediate(r));
      if (settled || this.timers.length === 0) continue;
      let next = 0;
      for (let i = 1; i < this.timers.length; i++) {
        const a = this.timers[i];
        const b = this.timers[next];
        if (a.at < b.at || (a.at === b.at && a.seq < b.seq)) next = i;
      }
      const [timer] = this.timers.splice(next, 1);
      this.t = Math.max(this.t, timer.at);
      timer.fire();
    }
    return work;
  }
}
