// Polling for the list views: the runs table, the counts and the workers refresh every ~2 s.
// One request at a time (a slow server is not stacked with more), restarted at once when what
// it depends on changes (a filter, the page, the token), and stopped with the view.

import { useEffect, useRef, useState } from "preact/hooks";

export interface Polled<T> {
  data: T | undefined;
  error: unknown;
}

export const POLL_INTERVAL_MS = 2000;

export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], intervalMs = POLL_INTERVAL_MS): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const once = async () => {
      try {
        const value = await loadRef.current(controller.signal);
        if (controller.signal.aborted) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (controller.signal.aborted) return;
        setError(err);
      }
      timer = setTimeout(once, intervalMs);
    };
    void once();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
    // `deps` is the caller's list of what the load reads: a change starts over at once.
  }, [...deps, intervalMs]);

  return { data, error };
}
