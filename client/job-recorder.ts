// Recording task calls made inside a job() builder. A call returns a
// placeholder (JobValue) for its result; passing it as an argument of another
// call is what makes that call depend on it.

/** The result of a call inside a job builder, known only once the job runs. */
export class JobValue<R = unknown> {
  /** Type-only marker of the result type. */
  declare readonly __value: R;
  constructor(
    /** The DAG node that computes it. */
    readonly nodeId: string,
    readonly task: string,
  ) {}
}

/**
 * The task of a recorded call. It is always a TaskRef (only `TaskRef.call()` records), named
 * here only by what this module reads: task-ref.ts records through this module, and the two
 * must not import each other (no import cycles, type-only ones included).
 */
export interface RecordedTask {
  readonly name: string;
}

export interface RecordedCall {
  id: string;
  ref: RecordedTask;
  args: unknown[];
}

let recording: RecordedCall[] | undefined;

export function recordJobCall(ref: RecordedTask, args: unknown[]): JobValue<any> {
  if (!recording) throw new Error(`${ref.name}.call() records a call inside a job() builder; to build a pipeline use ${ref.name}.send()`);
  const id = `${ref.name}#${recording.length + 1}`;
  recording.push({ id, ref, args });
  return new JobValue(id, ref.name);
}

/** Runs a job builder and returns the calls it made, in order. */
export function recordJob<T>(build: () => T): { calls: RecordedCall[]; returned: T } {
  const previous = recording;
  const calls: RecordedCall[] = [];
  recording = calls;
  try {
    return { calls, returned: build() };
  } finally {
    recording = previous;
  }
}
