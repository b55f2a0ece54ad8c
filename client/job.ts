// Jobs: a workflow written as code. Inside a job() builder, calling tasks
// (`task.call(...)`) records them; passing one call's result as another's
// argument creates the dependency; the builder returns the results the job
// produces, as a list. Jobs compile to one DAG step: the same engine runs them.
//
// @example
//   const basicPipeline = job("basic_orchestration", (x: number, y: number) => {
//     const arith = simpleArithmetic.call();
//     const product = multiply.call(x, y);
//     const doubled = multiply.call(product, 2);      // depends on product
//     return [arith, product, doubled];
//   });
//   const j = basicPipeline(5, 6);                    // j.name, j.id, j.status === "pending"
//   await runJobLocally(j, { tasks });                // or: await j.submit(client); await j.wait()
//   j.status === "completed"; j.result               // [3, 30, 60]

import { randomUUID } from "node:crypto";
import { RunState } from "@pipewright/protocol";
import type { PipewrightClient, RunHandle } from "./client.js";
import { RunFailedError } from "./client.js";
import type { Pipeline } from "./pipeline-builder.js";
import { JobValue, recordJob } from "./job-recorder.js";
import type { TaskRef } from "./task-ref.js";
import { ErrorTypes, RemoteError } from "@pipewright/protocol";
import { Workflow, type NodeRef } from "./workflow.js";

export type JobStatus = "pending" | "running" | "completed" | "failed" | "cancelled";

type Results<V extends readonly JobValue<any>[]> = { -readonly [K in keyof V]: V[K] extends JobValue<infer R> ? R : never };

export class Job<R> {
  /** Also the submission's request_id: submitting the same job twice gives one run. */
  readonly id = randomUUID();
  /** The run, once submitted. */
  runId?: string;
  private handle?: RunHandle<R>;
  private current: JobStatus = "pending";
  private value?: R;
  private failure?: RemoteError;

  constructor(
    readonly name: string,
    /** The job as a pipeline (one DAG step). */
    readonly pipeline: Pipeline<R>,
  ) {}

  get status(): JobStatus {
    return this.current;
  }

  /** The job's result, once completed. */
  get result(): R | undefined {
    return this.value;
  }

  /** Why the job failed (or was cancelled). */
  get error(): RemoteError | undefined {
    return this.failure;
  }

  /** Submits the job; its status becomes "running". */
  async submit(client: PipewrightClient): Promise<RunHandle<R>> {
    this.handle = await client.submit(this.pipeline, { requestId: this.id, name: this.name });
    this.runId = this.handle.id;
    this.current = "running";
    return this.handle;
  }

  /** Waits for a submitted job; sets status and result (or error) and returns the result. */
  async wait(): Promise<R> {
    if (!this.handle) throw new Error(`job ${this.name} was not submitted`);
    return this.follow(this.handle.result());
  }

  /**
   * Follows a run of the job to its end: its status, result and error come
   * from it. For the runners of a job (the client's wait, and the local test
   * runner, runJobLocally); the job's state is read-only to everyone else.
   */
  async follow(run: Promise<R>): Promise<R> {
    this.current = "running";
    try {
      this.value = await run;
      this.current = "completed";
      return this.value;
    } catch (err) {
      const failed = failureOf(err);
      if (failed) {
        this.failure = failed.error;
        this.current = failed.cancelled ? "cancelled" : "failed";
      }
      throw err;
    }
  }
}

/** A job's run failed: how (from the client, the run's error and state; from the local runner, its error). */
function failureOf(err: unknown): { error: RemoteError; cancelled: boolean } | undefined {
  if (err instanceof RunFailedError) return { error: err.error, cancelled: err.run.state === RunState.CANCELLED };
  if (err instanceof RemoteError) return { error: err, cancelled: err.type === ErrorTypes.cancelled };
  return undefined;
}

/** Defines a job: a function of its parameters that records task calls and returns their results. */
export function job<P extends unknown[], const V extends readonly JobValue<any>[]>(
  name: string,
  build: (...params: P) => V,
): (...params: P) => Job<Results<V>> {
  return (...params: P) => {
    const { calls, returned } = recordJob(() => build(...params));
    const wf = new Workflow(name);
    const nodes = new Map<string, NodeRef>();
    for (const c of calls) {
      const parents: { position: number; node: NodeRef }[] = [];
      const args = c.args.map((a, position) => {
        if (!(a instanceof JobValue)) return a;
        parents.push({ position, node: nodes.get(a.nodeId)! });
        return null;
      });
      const dependsOn = [...new Set(parents.map((p) => p.node))];
      nodes.set(c.id, wf.add(c.ref as TaskRef<any, any>, { id: c.id, args, dependsOn, parentArguments: parents, parentResults: "never", ignoreInput: true }));
    }
    const outputs = returned.map((v) => {
      const node = nodes.get(v.nodeId);
      if (!node) throw new Error(`job ${name} returned a value that was not recorded by this job`);
      return node;
    });
    return new Job(name, wf.toPipeline(outputs) as unknown as Pipeline<Results<V>>);
  };
}
