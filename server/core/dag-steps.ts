// DAG steps of a run (Step.dag): root nodes start with the step; a node that
// succeeds counts down its dependents, and each whose parents all succeeded
// runs with their results; a node that fails makes everything downstream of
// it SKIPPED (CANCELLED while the run stops). The step ends once nothing more
// can run, with the sinks' or outputs' results, or one aggregate error.

import { ParentResults, type Value } from "@pipewright/protocol";
import { pushAll } from "./arrays.js";
import { aggregateError } from "./flows.js";
import { mergeBranchStates } from "./merge-states.js";
import type { DagStep, Flow, TaskStep } from "./run-graph.js";
import type { StepContext } from "./step-context.js";
import { listValue, mapValue, noneValue } from "./values.js";

export class DagSteps {
  constructor(private readonly m: StepContext) {}

  start(dag: DagStep, flow: Flow): void {
    dag.input = flow;
    this.m.mark(dag, "waiting");
    dag.nodes.forEach((id, k) => {
      if (dag.parents[k].length === 0) this.m.dispatch(this.m.graph.task(id), this.m.taskInput(this.m.graph.task(id).call, flow));
    });
  }

  /** A node of the DAG is done: its dependents may run, or can never run. */
  nodeSettled(dag: DagStep, node: TaskStep, flow: Flow): void {
    dag.settled++;
    const k = node.index;
    if (flow.error) {
      // Everything downstream of a failed node can never run.
      const status = this.m.stopping ? "cancelled" : "skipped";
      const queue = [...dag.dependents[k]];
      for (let next = 0; next < queue.length; next++) {
        const dep = this.m.graph.task(dag.nodes[queue[next]]);
        if (dep.status !== "pending") continue;
        this.m.mark(dep, status);
        dag.settled++;
        pushAll(queue, dag.dependents[queue[next]]);
      }
    } else {
      for (const j of dag.dependents[k]) {
        if (--dag.remaining[j] > 0) continue;
        const dep = this.m.graph.task(dag.nodes[j]);
        if (dep.status !== "pending") continue;
        if (this.m.stopping) {
          this.m.mark(dep, "cancelled");
          dag.settled++;
          continue;
        }
        const parentResults: Record<string, Value> = {};
        for (const p of dag.parents[j]) parentResults[dag.spec.nodes[p].id] = this.m.graph.task(dag.nodes[p]).result ?? noneValue();
        const node = dag.spec.nodes[j];
        const mode = node.parentResults || ParentResults.AUTO;
        const args = [...dep.call.args];
        for (const pa of node.parentArguments) args[pa.position] = parentResults[pa.node];
        this.m.dispatch(dep, {
          args,
          kwargs: { ...dep.call.kwargs },
          state: dag.input!.state,
          parentResults: mode === ParentResults.NEVER ? undefined : parentResults,
        });
      }
    }
    if (this.m.stopping && !dag.swept) {
      // Nodes still pending can never start now. Once: none is pending afterwards
      // (a sweep per settled node would be quadratic in a big DAG).
      dag.swept = true;
      for (const id of dag.nodes) {
        const n = this.m.graph.task(id);
        if (n.status === "pending") {
          this.m.mark(n, "cancelled");
          dag.settled++;
        }
      }
    }
    if (dag.settled === dag.nodes.length) this.settle(dag);
  }

  /** Every node is done or can never run: the step's outcome, then the pipeline goes on. */
  private settle(dag: DagStep): void {
    const tasks = dag.nodes.map((id) => this.m.graph.task(id));
    const ran = tasks.filter((t) => t.status === "succeeded");
    const state = mergeBranchStates(
      dag.input!.state,
      ran.map((t) => t.stateAfter),
    );
    // Nodes cancelled before they started carry no error of their own.
    const failed = tasks.filter((t) => (t.status === "failed" || t.status === "cancelled") && t.error);
    let flow: Flow;
    if (failed.length) {
      flow = {
        error: aggregateError(
          failed.map((t) => t.error!),
          tasks.length,
          "nodes",
          this.m.graph.pathOf(dag),
        ),
        args: [],
        kwargs: {},
        state,
      };
    } else if (this.m.stopping && tasks.some((t) => t.status === "cancelled")) {
      flow = { error: this.m.stopping.error, args: [], kwargs: {}, state };
    } else if (dag.spec.outputs.length) {
      const byId = new Map(dag.spec.nodes.map((n, k) => [n.id, tasks[k]]));
      flow = { args: [listValue(dag.spec.outputs.map((id) => byId.get(id)!.result ?? noneValue()))], kwargs: {}, state };
    } else {
      const sinks: Record<string, Value> = {};
      dag.spec.nodes.forEach((n, k) => {
        if (dag.dependents[k].length === 0) sinks[n.id] = tasks[k].result ?? noneValue();
      });
      flow = { args: [mapValue(sinks)], kwargs: {}, state };
    }
    dag.error = flow.error;
    this.m.mark(dag, flow.error ? (this.m.stopping ? "cancelled" : "failed") : "succeeded");
    this.m.runFrom(this.m.graph.scopes[dag.scope], dag.index + 1, flow);
  }
}
