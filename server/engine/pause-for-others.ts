// Long work (building a 100,000-branch run, encoding its rows) awaits this at
// small steps: once ~10 ms of work has gone by since the last pause, it lets
// the event loop run everything else that is waiting (other clients' calls,
// workers' results, timers) before going on. One clock for the process, so
// several long jobs together still pause every ~10 ms.

const SLICE_MS = 10;
let sliceStarted = performance.now();

export async function pauseForOthers(): Promise<void> {
  if (performance.now() - sliceStarted < SLICE_MS) return;
  await new Promise((r) => setImmediate(r));
  sliceStarted = performance.now();
}
