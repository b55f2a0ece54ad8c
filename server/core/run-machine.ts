// The orchestration core: one run's state machine. `apply(input)` takes an
// event (start, a task finished, cancel, pause, resume, run timeout) and
// returns the effects to carry out (dispatch a task, cancel one, finish the
// run). No I/O, no clock: time comes in with each event, so replaying the
// persisted events rebuilds exactly the same state after a crash.
//
// The state is mutated in place rather than copied: copying a 100,000-branch
// group on every event would make each event O(n). Work is run from an
// agenda (a FIFO of continuations) instead of by recursion: every start of a
// branch and every return from a child pipeline to its task is an agenda
// item, so the call stack never grows with the run (a cascade of 10,000
// nested child pipelines finishing at once unwinds in a loop; what recursion
// is left is bounded by group nesting, at most 64 levels), and branches are
// dispatched in declaration order.
//
// The machine drives pipelines, scopes and cancellation; the drivers of tasks
// and child pipelines (task-steps.ts), groups (group-steps.ts), DAGs
// (dag-steps.ts) and waits (wait-steps.ts) see it only through StepContext
// and TaskContext (step-context.ts). Its vocabulary (config, inputs, effects)
// is machine-types.ts.

import type { Pipeline, TaskCall, TaskError, Value } from "@pipewright/protocol";
import { RunState, valuesStats, type ValueStats } from "@pipewright/protocol";
import { DagSteps } from "./dag-steps.js";
import { isEmpty, single } from "./flows.js";
import { GroupSteps } from "./group-steps.js";
import { DEFAULT_MACHINE_CONFIG, type Effect, type MachineConfig, type MachineStatus, type RunInput, type SignalOutcome } from "./machine-types.js";
import { accepts } from "./run-control.js";
import { RunGraph, type Flow, type GroupStep, type Scope, type Step, type TaskInput, type TaskStep } from "./run-graph.js";
import type { TaskContext } from "./step-context.js";
import { TaskSteps } from "./task-steps.js";
import { errorValue, serverError } from "./values.js";
import { WaitSteps } from "./wait-steps.js";
import { Waits } from "./waits.js";

// The vocabulary (config, inputs, effects) lives in machine-types.ts; importers take it from here.
export * from "./machine-types.js";

export class RunMachine implements TaskContext {
  readonly graph = new RunGraph();
  status: MachineStatus = "running";
  /**
   * Set once a cancel (or the run timeout) was applied: only finally steps
   * still run. The run then ends with `error`, unless a finally step fails
   * while unwinding: its error wins (`finallyFailure`).
   */
  stopping?: { error: TaskError; finalState: RunState; finallyFailure?: TaskError };
  finishedAt?: number;
  /** The finish effect, kept so that readers can see how the run ended. */
  result?: Extract<Effect, { type: "finished" }>;
  /** Steps whose status changed during the last `apply`, for watchers. */
  changed: number[] = [];

  private readonly agenda: (() => void)[] = [];
  private effects: Effect[] = [];
  /** Wait steps waiting now, and the signals kept for waits not reached yet. */
  readonly waits = new Waits();
  private readonly groupSteps: GroupSteps;
  private readonly dagSteps: DagSteps;
  private readonly waitSteps: WaitSteps;
  private readonly taskSteps: TaskSteps;
  /** What the last signal input did (SignalRunResponse). */
  lastSignal?: SignalOutcome;
  /** The time of the input being applied (StepContext). */
  now = 0;

  /** The state of the run, as stored and shown. */
  get runState(): RunState {
    if (this.result) return this.result.state;
    if (this.stopping) return RunState.CANCELLING;
    return this.status === "paused" ? RunState.PAUSED : RunState.RUNNING;
  }

  constructor(
    pipeline: Pipeline | undefined,
    readonly config: MachineConfig = DEFAULT_MACHINE_CONFIG,
  ) {
    // The drivers get the machine itself, typed as the StepContext it implements: an object
    // of closures per machine instead cost ~3.7 KB per run (every instance its own hidden
    // class), doubling the memory of a run held while it waits.
    this.groupSteps = new GroupSteps(this);
    this.dagSteps = new DagSteps(this);
    this.waitSteps = new WaitSteps(this, this.waits);
    this.taskSteps = new TaskSteps(this, this.dagSteps);
    if (pipeline) this.graph.addScope(pipeline, { type: "root" }, 0, "", 0);
  }

  /**
   * The machine of a new run, built and started with pauses: `pause` is
   * awaited every few hundred branches compiled or agenda items run, so a
   * caller can let other work run (a 100,000-branch run takes several hundred
   * milliseconds to build and start). Pure like the rest: the machine and the
   * start's effects are those `new RunMachine(p).apply(start)` gives.
   */
  static async start(pipeline: Pipeline, config: MachineConfig, at: number, pause: () => Promise<void>): Promise<{ machine: RunMachine; effects: Effect[] }> {
    const machine = new RunMachine(undefined, config);
    const building = machine.graph.buildScope(pipeline, { type: "root" }, 0, "", 0);
    for (let n = 1; !building.next().done; n++) if (n % 256 === 0) await pause();
    machine.begin({ type: "start", at });
    while (!machine.drain(1024)) await pause();
    return { machine, effects: machine.effects };
  }

  /** Applies one event; returns the effects it causes (none when it changes nothing). */
  apply(input: RunInput): Effect[] {
    this.begin(input);
    this.drain();
    return this.effects;
  }

  /** Takes an event in: the agenda then holds the work it causes. */
  private begin(input: RunInput): void {
    this.now = input.at;
    this.effects = [];
    this.changed = [];
    if (this.status === "finished") return;
    switch (input.type) {
      case "start":
        this.agenda.push(() => this.startScope(this.graph.scopes[0], { args: [], kwargs: {} }));
        break;
      case "taskFinished":
        this.taskSteps.finished(input);
        break;
      case "cancel":
        this.stop(serverError("Cancelled", input.reason ? `run cancelled: ${input.reason}` : "run cancelled"), RunState.CANCELLED);
        break;
      case "timeout":
        this.stop(serverError("Timeout", "run timed out"), RunState.FAILED);
        break;
      case "pause":
        if (accepts(this.runState, "pause")) {
          this.status = "paused";
          this.effects.push({ type: "holdQueued", held: true });
        }
        break;
      case "wake":
        this.waitSteps.wake(input.at);
        break;
      case "signal":
        this.lastSignal = this.waitSteps.signal(input);
        break;
      case "event":
        this.waitSteps.event(input);
        break;
      case "resume":
        if (accepts(this.runState, "resume")) {
          this.status = "running";
          this.effects.push({ type: "holdQueued", held: false });
          this.taskSteps.releaseHeld();
        }
        break;
    }
  }

  /**
   * Ends the run FAILED with `error`, whatever state it is in; every task
   * still queued or running is cancelled. For a machine that cannot go on
   * (it threw while applying an event, so its state may be half-applied):
   * it touches nothing but the set of active tasks and the run's end.
   */
  abandon(error: TaskError, at: number): Effect[] {
    this.now = at;
    this.agenda.length = 0;
    this.changed = [];
    this.effects = [];
    this.taskSteps.dropAll();
    this.waitSteps.forget();
    this.status = "finished";
    this.finishedAt = at;
    this.result = { type: "finished", state: RunState.FAILED, outcome: { error } };
    this.effects.push(this.result);
    return this.effects;
  }

  /** True when `step` is a task waiting for a result (a result for any other step is stale). */
  isAwaitingResult(step: number): boolean {
    return this.taskSteps.active.has(step);
  }

  /**
   * Runs the agenda, to the end or `max` items; returns whether it is empty.
   * Reads by index, not shift(): shifting a big array (a group of 100,000
   * branches queues one job each) copies it every time.
   */
  private drain(max = Infinity): boolean {
    const agenda = this.agenda;
    let next = 0;
    try {
      while (next < agenda.length && next < max) agenda[next++]();
    } finally {
      agenda.splice(0, next); // what ran (or threw) is done, as shift() would have left it
    }
    return agenda.length === 0;
  }

  /** StepContext: work queued on the agenda. */
  later(job: () => void): void {
    this.agenda.push(job);
  }

  /** StepContext: an effect of the input being applied. */
  emit(effect: Effect): void {
    this.effects.push(effect);
  }

  /** StepContext (for the drivers; not for the engine). */
  mark(step: Step, status: Step["status"]): void {
    step.status = status;
    this.changed.push(step.id);
    if (status === "queued" || status === "waiting") step.startedAt ??= this.now;
    else if (status !== "pending") step.finishedAt = this.now;
  }

  // ---- pipelines -----------------------------------------------------------

  /** StepContext. */
  startScope(scope: Scope, incoming: Flow): void {
    scope.status = "running";
    const initial = scope.initial;
    // Most pipelines have no initial parameters: their incoming flow is shared, not copied.
    const flow: Flow = initial
      ? { args: [...incoming.args, ...initial.args], kwargs: { ...incoming.kwargs, ...initial.kwargs }, state: initial.state ?? incoming.state }
      : incoming;
    this.runFrom(scope, 0, flow);
  }

  /** StepContext: runs the scope's steps from `index`, skipping what the flow says to skip. */
  runFrom(scope: Scope, index: number, flow: Flow): void {
    for (let i = index; i < scope.steps.length; i++) {
      const step = this.graph.step(scope.steps[i]);
      if (this.stopping) {
        this.settleUnstarted(step, "cancelled");
        continue;
      }
      if (step.kind === "task" && step.role === "exceptionally") {
        if (!flow.error) {
          this.mark(step, "skipped");
          continue;
        }
        this.dispatch(step, { args: [errorValue(flow.error), ...step.call.args], kwargs: { ...step.call.kwargs }, state: flow.state });
        return;
      }
      if (flow.error) {
        this.settleUnstarted(step, "skipped");
        continue;
      }
      switch (step.kind) {
        case "task":
          this.dispatch(step, this.taskInput(step.call, flow));
          return;
        case "group":
          this.groupSteps.start(step, flow);
          return;
        case "dag":
          this.dagSteps.start(step, flow);
          return;
        case "wait":
          this.waitSteps.start(step, flow);
          return;
        default:
          throw new Error(`a ${step.kind} step cannot sit in a pipeline`);
      }
    }
    this.endSteps(scope, flow);
  }

  /** StepContext. Arrays and maps are shared when nothing has to be added (they are never mutated): a 100,000-branch group would otherwise copy them 100,000 times. */
  taskInput(call: TaskCall, flow: Flow): TaskInput {
    const args = call.ignoreInput || flow.args.length === 0 ? call.args : call.args.length === 0 ? flow.args : [...flow.args, ...call.args];
    const kwargs = isEmpty(flow.kwargs) ? call.kwargs : isEmpty(call.kwargs) ? flow.kwargs : { ...flow.kwargs, ...call.kwargs };
    return { args, kwargs, state: flow.state };
  }

  /** All steps ran (or were skipped): run the finally step, or finish. */
  private endSteps(scope: Scope, flow: Flow): void {
    if (scope.finallyStep && scope.status === "running") {
      scope.status = "finally";
      scope.held = flow;
      const fin = this.graph.task(scope.finallyStep);
      this.dispatch(fin, { args: [...fin.call.args], kwargs: { ...fin.call.kwargs }, state: flow.state });
      return;
    }
    this.finishScope(scope, flow);
  }

  /** TaskContext. */
  finishScope(scope: Scope, flow: Flow): void {
    scope.status = "done";
    scope.outcome = flow;
    const parent = scope.parent;
    switch (parent.type) {
      case "root":
        this.finishRun(flow);
        return;
      case "branch":
        this.groupSteps.branchSettled(this.graph.step(parent.group) as GroupStep, parent.index);
        return;
      case "child": {
        // Through the agenda, not a call: a chain of thousands of nested child
        // pipelines finishing at once would otherwise unwind as one recursion
        // per level (a stack overflow near 1,600 levels; --max-depth allows 10,000).
        const task = this.graph.task(parent.task);
        const own = scope.inline ? flow.state : (task.stateOut ?? task.input?.state);
        this.agenda.push(() =>
          this.taskSteps.settle(task, flow.error ? { error: flow.error, args: [], kwargs: {}, state: own } : { args: [single(flow)], kwargs: {}, state: own }),
        );
        return;
      }
    }
  }

  /** TaskContext: why a value cannot be sent on (too big, too deep), if it cannot. */
  overLimits(s: ValueStats, what: string): string | undefined {
    if (s.bytes > this.config.maxValueBytes) return `${what} is about ${s.bytes} bytes, over the limit of ${this.config.maxValueBytes}`;
    if (s.depth > this.config.maxValueDepth) return `${what} nests values ${s.depth} levels deep, over the limit of ${this.config.maxValueDepth}`;
    return undefined;
  }

  private finishRun(flow: Flow): void {
    let state: RunState;
    let outcome: { error: TaskError } | { value: Value };
    if (this.stopping) {
      state = this.stopping.finalState;
      outcome = { error: this.stopping.finallyFailure ?? this.stopping.error };
    } else if (flow.error) {
      state = RunState.FAILED;
      outcome = { error: flow.error };
    } else {
      state = RunState.SUCCEEDED;
      outcome = { value: single(flow) };
    }
    // What nobody could read back is not kept: a result too big fails the run, a state too big is dropped.
    let finalState = flow.state;
    const over = this.overLimits(valuesStats(["value" in outcome ? outcome.value : undefined, finalState]), "the run's result (with its final state)");
    if (over) {
      finalState = undefined;
      if ("value" in outcome) {
        state = RunState.FAILED;
        outcome = { error: serverError("LimitExceeded", over) };
      }
    }
    this.status = "finished";
    this.finishedAt = this.now;
    this.waitSteps.forget();
    this.result = { type: "finished", state, outcome, finalState };
    this.effects.push(this.result);
  }

  /** StepContext: a task step goes to the queue (or waits for the run's resume). */
  dispatch(step: TaskStep, input: TaskInput): void {
    this.taskSteps.dispatch(step, input);
  }

  /** StepContext: marks a step that never started, and everything inside it. */
  settleUnstarted(step: Step, status: "skipped" | "cancelled"): void {
    if (step.status !== "pending") return;
    this.mark(step, status);
    const inner = (scopeId: number) => {
      const s = this.graph.scopes[scopeId];
      s.status = "done";
      for (const id of s.steps) this.settleUnstarted(this.graph.step(id), status);
      if (s.finallyStep) this.settleUnstarted(this.graph.step(s.finallyStep), status);
    };
    if (step.kind === "group") {
      step.branches.forEach(inner);
      for (const id of step.stages) this.mark(this.graph.step(id), status);
    } else if (step.kind === "dag") {
      for (const id of step.nodes) this.mark(this.graph.step(id), status);
    }
  }

  /** True when the run only waits: some wait step waiting, no task queued, running or held by a pause (see engine/parking.ts). */
  isOnlyWaiting(): boolean {
    return !this.result && !this.stopping && this.taskSteps.active.size === 0 && this.taskSteps.heldCount === 0 && this.waits.waiting.size > 0;
  }

  /** When a wait of this run next ends by itself or times out, if any will. */
  nextWakeAt(): number | undefined {
    return this.result ? undefined : this.waits.nextWakeAt();
  }

  // ---- cancellation --------------------------------------------------------

  /** Cancel or run timeout: stop every running task (finally steps excepted) and unwind. */
  private stop(error: TaskError, finalState: RunState): void {
    if (this.stopping) return;
    this.stopping = { error, finalState };
    // Attempts decided while paused never reached the queue: nothing to cancel
    // for them, and the finally steps among them must still run.
    let neverQueued = new Set<number>();
    if (this.status === "paused") {
      this.status = "running";
      this.effects.push({ type: "holdQueued", held: false });
      neverQueued = this.taskSteps.releaseHeldOnStop();
    }
    this.waitSteps.stopAll(error);
    this.taskSteps.stopActive(error, neverQueued);
  }
}
