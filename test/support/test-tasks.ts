// Tasks used by the semantic tests. Deterministic: their results depend only
// on their arguments, the state and the retry number.

import { Pipeline, inParallel } from "../../client/pipeline-builder.js";
import { statefulTask, task, TerminalError, type TaskDefinition } from "../../worker-sdk/task.js";
import { currentTask } from "../../worker-sdk/task-context.js";
import { allTasks as exampleTasks, fail as exFail } from "../../examples/tasks.js";

/** Observes how many probe tasks run at once (in this process). */
export const concurrency = {
  now: 0,
  max: 0,
  reset() {
    this.now = 0;
    this.max = 0;
  },
};

export const probe = task("probe", async (id: number, ms: number) => {
  concurrency.now++;
  concurrency.max = Math.max(concurrency.max, concurrency.now);
  await new Promise((r) => setTimeout(r, ms));
  concurrency.now--;
  return id;
});

export class Flaky extends Error {
  override name = "Flaky";
}
export class Other extends Error {
  override name = "Other";
}

/** Fails with Flaky until try number `succeedOn`; then returns the try number. */
export const flaky = task("flaky", (succeedOn: number) => {
  const n = currentTask().retryNumber;
  if (n < succeedOn) throw new Flaky(`try ${n} failed`);
  return n;
});

export const failWith = task("fail_with", (type: string, message: string, terminal: boolean): number => {
  if (terminal) throw new TerminalError(message);
  const e = new Error(message);
  e.name = type;
  throw e;
});

export const echo = task("echo", (...args: unknown[]) => args);
export const retryNumber = task("retry_number", () => currentTask().retryNumber);
export const setKey = statefulTask(
  "set_key",
  (state: Record<string, unknown> | null, key: string, value: unknown) => [{ ...(state ?? {}), [key]: value }, value] as const,
);
export const setState = statefulTask("set_state", (_state: unknown, value: unknown) => [value, value] as const);
export const getState = statefulTask("get_state", (state: unknown) => [state, state] as const);

/** Returns a child pipeline that sets state key `key`; inline or isolated. */
export const childSetsKey = task("child_sets_key", (key: string, inline: boolean): Pipeline<unknown> => {
  const p = setKey.send(key, "from-child").continueWith(getState);
  return inline ? p.inline() : p;
});

/** Recursion: returns a child that calls itself until n is 0. */
export const deep: TaskDefinition<[n: number], number> = task("deep", (n: number): number | Pipeline<number> =>
  n <= 0 ? 0 : deep.send(n - 1).continueWith(add1),
);
export const add1 = task("add1", (x: number) => x + 1);

/** Returns a group of n echo tasks. */
export const fanOut = task("fan_out", (n: number) => inParallel(Array.from({ length: n }, (_, i) => echo.send(i))));

export const testTasks: TaskDefinition<any, any>[] = [
  ...exampleTasks,
  probe,
  flaky,
  failWith,
  echo,
  retryNumber,
  setKey,
  setState,
  getState,
  childSetsKey,
  deep,
  add1,
  fanOut,
];

/** An exceptionally handler that fails again, with another type. */
export const rethrowAs = task("rethrow_as", (error: import("../../proto/runtime/values.js").RemoteError, type: string): number => {
  const e = new Error(`${error.type}: ${error.message}`);
  e.name = type;
  throw e;
});
/** Returns the keyword arguments it was called with (its positional ones are ignored). */
export const kwargsOf = task("kwargs_of", (..._ignored: unknown[]) => currentTask().kwargs);
/** Returns a child pipeline whose task fails. */
export const childFails = task("child_fails", () => exFail.send("deep"));
testTasks.push(rethrowAs, kwargsOf, childFails);

/** What the gate and nap tasks did, in order (this process's workers only). */
export const journal: string[] = [];
const gateOpeners = new Map<string, () => void>();
const openGates = new Set<string>();

/** Lets a `gate` task with this name finish (now, or as soon as it starts). */
export function openGate(name: string): void {
  openGates.add(name);
  gateOpeners.get(name)?.();
}

/** Opens every gate still waiting (so no task is left hanging), then forgets them all. */
export function resetGates(): void {
  for (const open of gateOpeners.values()) open();
  journal.length = 0;
  openGates.clear();
  gateOpeners.clear();
}

/** Waits until its gate is opened; records start, abort and finish in `journal`. */
export const gate = task("gate", async (name: string) => {
  journal.push(`start ${name}`);
  const { signal } = currentTask();
  try {
    await new Promise<void>((resolve, reject) => {
      if (openGates.has(name)) return resolve();
      gateOpeners.set(name, resolve);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  } catch (err) {
    journal.push(`aborted ${name}`);
    throw err;
  }
  journal.push(`done ${name}`);
  return name;
});

/** Sleeps, ignoring cancellation on purpose (a task that does not cooperate). */
export const nap = task("nap", async (ms: number) => {
  journal.push(`nap ${ms}`);
  await new Promise((r) => setTimeout(r, ms));
  return ms;
});

/** Returns a child pipeline that waits at a gate. */
export const childGate = task("child_gate", (name: string) => gate.send(name));

testTasks.push(gate, nap, childGate);

/** A downstream service the tests can take down and bring back. */
export const downstreamService = { healthy: true, calls: 0 };
export class DownstreamError extends Error {
  override name = "DownstreamError";
}
export const downstream = task("downstream", (x: number) => {
  downstreamService.calls++;
  if (!downstreamService.healthy) throw new DownstreamError("service unavailable");
  return x;
});
testTasks.push(downstream);

/** A DAG node that asks for its parents' results (they come first). */
export const collect = task("collect", (parents: Record<string, unknown>, ...rest: unknown[]) => ({ parents, rest }), { parentResults: true });
/** Sums a list (canvas chunks). */
export const sumList = task("sum_list", (items: number[]) => items.reduce((a, b) => a + b, 0));
testTasks.push(collect, sumList);
