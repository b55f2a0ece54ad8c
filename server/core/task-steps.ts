// Task steps of a run: a dispatch (held while the run is paused), the
// worker's result (a value, an error that may be retried, or a pipeline run
// as a child whose outcome becomes the task's), and the step's end, after
// which its pipeline, DAG or finally unwinding goes on. The tasks queued or
// running, and those held by a pause, are counted here.

import type { Pipeline, TaskError, Value } from "@pipewright/protocol";
import { boundError, childScopePath, countTasks, formatViolations, ParentResults, validatePipeline } from "@pipewright/protocol";
import type { DagSteps } from "./dag-steps.js";
import { inputStats, isCancellation } from "./flows.js";
import type { Dispatch, RunInput } from "./machine-types.js";
import { effectiveRetry, retryDelay } from "./retry-policy.js";
import type { DagStep, Flow, TaskInput, TaskStep } from "./run-graph.js";
import type { TaskContext } from "./step-context.js";
import { serverError } from "./values.js";

export class TaskSteps {
  /** Task steps queued or running now. */
  readonly active = new Set<number>();
  /** Dispatches decided while paused, released on resume. */
  private held: Dispatch[] = [];

  constructor(
    private readonly m: TaskContext,
    private readonly dagSteps: DagSteps,
  ) {}

  /** Dispatches held by a pause. */
  get heldCount(): number {
    return this.held.length;
  }

  dispatch(step: TaskStep, input: TaskInput, notBefore = this.m.now): void {
    const stats = inputStats(input);
    const over = this.m.overLimits(stats, `the task's input`);
    if (over) {
      // It could never reach a worker: the step fails (never retried) instead of being queued.
      step.input = input;
      this.m.later(() => this.settle(step, { error: serverError("LimitExceeded", over, this.m.graph.pathOf(step)), args: [], kwargs: {}, state: input.state }));
      return;
    }
    step.attempts++;
    step.input = input;
    this.active.add(step.id);
    this.m.mark(step, "queued");
    const dispatch: Dispatch = {
      step: step.id,
      retry: step.attempts,
      notBefore,
      call: step.call,
      input,
      parentResultsMode: step.role === "dag_node" ? this.parentResultsMode(step) : ParentResults.UNSPECIFIED,
      path: this.m.graph.pathOf(step),
      inputBytes: stats.bytes,
    };
    if (this.m.status === "paused") this.held.push(dispatch);
    else this.m.emit({ type: "dispatch", dispatch });
  }

  /** A worker's result (a stale one, for a step not awaited, does nothing). */
  finished(input: Extract<RunInput, { type: "taskFinished" }>): void {
    const step = this.m.graph.step(input.step);
    if (!step || step.kind !== "task" || !this.active.has(step.id)) return; // stale: not awaited
    this.active.delete(step.id);
    if (input.startedAt !== undefined && step.attempts === 1) step.startedAt = Math.min(step.startedAt ?? input.startedAt, input.startedAt);
    const outcome = input.outcome;
    switch (outcome.case) {
      case "value":
        this.m.later(() => this.settle(step, { args: [outcome.value], kwargs: {}, state: input.state ?? step.input?.state }));
        break;
      case "error":
        this.m.later(() => this.failed(step, boundError(outcome.value)));
        break;
      case "pipeline":
        this.m.later(() => this.startChild(step, outcome.value, input.state));
        break;
      default:
        this.m.later(() => this.failed(step, serverError("InvalidResult", "the worker sent a result with no outcome")));
    }
  }

  /** Resume: the dispatches held by the pause go out. */
  releaseHeld(): void {
    for (const d of this.held) this.m.emit({ type: "dispatch", dispatch: d });
    this.held = [];
  }

  /**
   * The run stops while paused: held finally steps go out (they still run),
   * the others never reached the queue; returns those (nothing to cancel for them).
   */
  releaseHeldOnStop(): Set<number> {
    const neverQueued = new Set<number>();
    for (const d of this.held) {
      if (this.m.graph.task(d.step).role === "finally") this.m.emit({ type: "dispatch", dispatch: d });
      else neverQueued.add(d.step);
    }
    this.held = [];
    return neverQueued;
  }

  /** The run stops: every task queued or running, finally steps excepted, is cancelled and ends with `error`. */
  stopActive(error: TaskError, neverQueued: Set<number>): void {
    for (const id of [...this.active]) {
      const step = this.m.graph.task(id);
      if (step.role === "finally") continue;
      this.active.delete(id);
      if (!neverQueued.has(id)) this.m.emit({ type: "cancelTask", step: id });
      this.m.later(() => this.settle(step, { error, args: [], kwargs: {}, state: step.input?.state }));
    }
  }

  /** The run is abandoned: every task queued or running is cancelled, nothing held goes out. */
  dropAll(): void {
    for (const step of this.active) this.m.emit({ type: "cancelTask", step });
    this.active.clear();
    this.held = [];
  }

  /** A task step is done (directly, or through its child pipeline): move on. */
  settle(step: TaskStep, flow: Flow): void {
    step.error = flow.error;
    if (!flow.error) step.result = flow.args[0];
    step.stateAfter = flow.state;
    this.m.mark(step, flow.error ? (isCancellation(flow.error) ? "cancelled" : "failed") : "succeeded");
    const scope = this.m.graph.scopes[step.scope];
    switch (step.role) {
      case "finally": {
        const held = scope.held!;
        const stopping = this.m.stopping;
        if (flow.error && stopping && !stopping.finallyFailure) stopping.finallyFailure = flow.error;
        this.m.finishScope(scope, flow.error ? { error: flow.error, args: [], kwargs: {}, state: held.state } : { ...held, state: flow.state });
        return;
      }
      case "dag_node":
        this.dagSteps.nodeSettled(this.m.graph.step(step.dag!) as DagStep, step, flow);
        return;
      default:
        this.m.runFrom(scope, step.index + 1, flow);
    }
  }

  private parentResultsMode(step: TaskStep): ParentResults {
    const dag = this.m.graph.step(step.dag!) as DagStep;
    return dag.spec.nodes[step.index].parentResults || ParentResults.AUTO;
  }

  private failed(step: TaskStep, reported: TaskError): void {
    const error = { ...reported, origin: reported.origin || this.m.graph.pathOf(step) } as TaskError;
    const policy = effectiveRetry(step.call.options?.retry, this.m.config.defaultRetry);
    const delay = this.m.stopping && step.role !== "finally" ? undefined : retryDelay(policy, step.attempts, error);
    if (delay !== undefined) {
      step.error = error;
      this.dispatch(step, step.input!, this.m.now + delay);
      return;
    }
    this.settle(step, { error, args: [], kwargs: {}, state: step.input?.state });
  }

  private startChild(step: TaskStep, child: Pipeline, stateOut: Value | undefined): void {
    const { graph, config } = this.m;
    const scope = graph.scopes[step.scope];
    const violations = validatePipeline(child, "child");
    const path = graph.pathOf(step);
    if (violations.length) {
      this.failed(step, serverError("InvalidPipeline", `the returned pipeline is invalid: ${formatViolations(violations)}`, path));
      return;
    }
    if (scope.depth + 1 > config.maxDepth) {
      this.failed(step, serverError("LimitExceeded", `child pipeline nesting would exceed the limit of ${config.maxDepth} levels`, path));
      return;
    }
    const added = countTasks(child);
    if (graph.taskCount + added > config.maxTasks) {
      this.failed(step, serverError("LimitExceeded", `the run would hold ${graph.taskCount + added} tasks, over the limit of ${config.maxTasks}`, path));
      return;
    }
    step.stateOut = stateOut;
    const childId = graph.addScope(child, { type: "child", task: step.id }, scope.depth + 1, childScopePath(path, scope.depth + 1), step.id);
    step.child = childId;
    this.m.mark(step, "waiting");
    const inherited = child.inline ? (stateOut ?? step.input?.state) : undefined;
    this.m.startScope(graph.scopes[childId], { args: [], kwargs: {}, state: inherited });
  }
}
