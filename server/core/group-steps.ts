// Parallel groups of a run (Step.group): branches start up to
// max_parallelism at once (a semaphore: the next starts as soon as one
// ends), each from the group's input, on the machine's agenda so that a
// 100,000-branch group never deepens the stack; staged groups count each
// stage apart. Once every branch is done the results are gathered in
// declaration order (or one aggregate error), states merged, and the
// pipeline goes on.

import { aggregateError, isCancellation, single } from "./flows.js";
import { mergeBranchStates } from "./merge-states.js";
import type { Flow, GroupStep, StageStep } from "./run-graph.js";
import type { StepContext } from "./step-context.js";
import { errorValue, listValue } from "./values.js";

export class GroupSteps {
  constructor(private readonly m: StepContext) {}

  /** The pipeline reached the group: its first branches start (all, or max_parallelism of them). */
  start(group: GroupStep, flow: Flow): void {
    group.input = flow;
    this.m.mark(group, "waiting");
    for (const id of group.stages) this.m.mark(this.m.graph.step(id), "waiting");
    const n = group.branches.length;
    if (n === 0) {
      this.settle(group);
      return;
    }
    const limit = group.maxParallelism > 0 ? Math.min(group.maxParallelism, n) : n;
    for (let k = 0; k < limit; k++) this.startBranch(group);
  }

  private startBranch(group: GroupStep): void {
    const scope = this.m.graph.scopes[group.branches[group.started++]];
    group.running++;
    const input = group.input!;
    this.m.later(() => this.m.startScope(scope, input));
  }

  /** A branch is done: the next one starts (or, while the run stops, those not started end cancelled). */
  branchSettled(group: GroupStep, index: number): void {
    group.running--;
    group.settled++;
    const scope = this.m.graph.scopes[group.branches[index]];
    if (scope.stage) this.stageBranchSettled(this.m.graph.step(scope.stage) as StageStep);
    const n = group.branches.length;
    if (this.m.stopping) {
      // Nothing new starts: the branches not started yet end cancelled.
      while (group.started < n) {
        const rest = this.m.graph.scopes[group.branches[group.started++]];
        for (const id of rest.steps) this.m.settleUnstarted(this.m.graph.step(id), "cancelled");
        if (rest.finallyStep) this.m.settleUnstarted(this.m.graph.step(rest.finallyStep), "cancelled");
        rest.status = "done";
        rest.outcome = { error: this.m.stopping.error, args: [], kwargs: {} };
        group.settled++;
        if (rest.stage) this.stageBranchSettled(this.m.graph.step(rest.stage) as StageStep);
      }
    } else if (group.started < n) {
      this.startBranch(group);
    }
    if (group.settled === n) this.settle(group);
  }

  private stageBranchSettled(stage: StageStep): void {
    stage.settled++;
    if (stage.settled === stage.to - stage.from) {
      const group = this.m.graph.step(stage.group) as GroupStep;
      const failed = group.branches.slice(stage.from, stage.to).some((b) => this.m.graph.scopes[b].outcome?.error);
      this.m.mark(stage, failed && !group.returnExceptions ? "failed" : "succeeded");
    }
  }

  /** Every branch is done: gather the results in declaration order. */
  private settle(group: GroupStep): void {
    const outcomes = group.branches.map((b) => this.m.graph.scopes[b].outcome!);
    const state = mergeBranchStates(
      group.input!.state,
      outcomes.map((o) => o.state),
    );
    const failures = outcomes.filter((o) => o.error);
    let flow: Flow;
    if (failures.length && !group.returnExceptions) {
      const causes = failures.map((o) => o.error!);
      const origin = this.m.graph.pathOf(group);
      flow = { error: aggregateError(causes, outcomes.length, "branches", origin), args: [], kwargs: {}, state };
    } else {
      const items = outcomes.map((o) => (o.error ? errorValue(o.error) : single(o)));
      flow = { args: [listValue(items)], kwargs: {}, state };
    }
    group.error = flow.error;
    this.m.mark(group, flow.error ? (this.m.stopping && failures.every((o) => isCancellation(o.error!)) ? "cancelled" : "failed") : "succeeded");
    this.m.runFrom(this.m.graph.scopes[group.scope], group.index + 1, flow);
  }
}
