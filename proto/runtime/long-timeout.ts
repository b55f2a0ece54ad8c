// setTimeout for any delay. Node's setTimeout takes at most 2^31-1 ms (24.8
// days): a longer delay is silently replaced by 1 ms, so a 30-day run timeout
// fired at once. This one waits in steps of at most that much.

const MAX_STEP_MS = 2 ** 31 - 1;

export interface LongTimeout {
  /** Cancels it (no effect once it fired). */
  clear(): void;
}

/** Calls `fn` once, `ms` from now; the timer does not keep the process alive when `unref` is set. */
export function setLongTimeout(fn: () => void, ms: number, options: { unref?: boolean } = {}): LongTimeout {
  const due = Date.now() + Math.max(0, ms);
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = due - Date.now();
    timer = left > MAX_STEP_MS ? setTimeout(arm, MAX_STEP_MS) : setTimeout(fn, Math.max(0, left));
    if (options.unref) timer.unref();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
