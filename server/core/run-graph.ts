// The compiled form of a run: every step of the submitted pipeline (and of the
// child pipelines tasks return) as a node in flat arrays, linked by ids.
//
// One graph serves every front door (continuations, groups, DAGs, children):
// a step knows its scope (the pipeline it belongs to) and its position, a
// group knows its branch scopes, a DAG knows its nodes and their dependents.
// Completing a step touches only that step, its scope and its container, so
// the cost of one event does not depend on the size of the run.

import type { Dag, Group, Pipeline, TaskCall, Wait } from "@pipewright/protocol";
import type { TaskError, Value } from "@pipewright/protocol";

/** What flows from one step to the next. */
export interface Flow {
  /** Set while an error is flowing; then `args` is empty. */
  error?: TaskError;
  /** Leading arguments for the next task: the previous result, or a pipeline's initial arguments. */
  args: Value[];
  /** Keyword arguments for entry tasks (initial kwargs); empty after the first task. */
  kwargs: Record<string, Value>;
  /** The pipeline state, if any. */
  state?: Value;
}

export type StepCode = "pending" | "queued" | "waiting" | "succeeded" | "failed" | "skipped" | "cancelled";
export type TaskRole = "task" | "exceptionally" | "finally" | "dag_node";

interface StepBase {
  id: number;
  /** The pipeline scope the step belongs to. */
  scope: number;
  /** Position in the scope's steps (or in its DAG for DAG nodes); -1 for finally. */
  index: number;
  /** Path relative to the scope, e.g. "steps[2]", "finally", "steps[1].dag.nodes[0]". */
  segment: string;
  /** The enclosing group, DAG or task step (0 for the root pipeline's steps). */
  parentStep: number;
  status: StepCode;
  startedAt?: number;
  finishedAt?: number;
  error?: TaskError;
}

/** The arguments an attempt is dispatched with, kept for retries. */
export interface TaskInput {
  args: Value[];
  kwargs: Record<string, Value>;
  state?: Value;
  parentResults?: Record<string, Value>;
}

export interface TaskStep extends StepBase {
  kind: "task";
  role: TaskRole;
  call: TaskCall;
  /** Attempts dispatched so far by the engine (a worker lost mid-task does not count). */
  attempts: number;
  input?: TaskInput;
  /** State the task returned together with a child pipeline. */
  stateOut?: Value;
  /** The child pipeline scope, when the task returned one. */
  child?: number;
  /** The result, kept for DAG nodes whose dependents need it. */
  result?: Value;
  /** The state after the task (what it returned, or what it received). */
  stateAfter?: Value;
  /** For DAG nodes: the DAG step. */
  dag?: number;
}

export interface GroupStep extends StepBase {
  kind: "group";
  /** What the group needs of its spec (not the spec: its branches' messages are garbage once compiled). */
  maxParallelism: number;
  returnExceptions: boolean;
  branches: number[];
  /** Stage steps, when num_stages > 1. */
  stages: number[];
  input?: Flow;
  started: number;
  running: number;
  settled: number;
}

/** A contiguous slice of a group's branches, gathered on its own. */
export interface StageStep extends StepBase {
  kind: "stage";
  group: number;
  from: number;
  to: number;
  settled: number;
}

export interface DagStep extends StepBase {
  kind: "dag";
  spec: Dag;
  /** The task step of each DAG node, in declaration order. */
  nodes: number[];
  /** For each node (by position): positions of the nodes that depend on it. */
  dependents: number[][];
  /** For each node: positions of its parents. */
  parents: number[][];
  /** For each node: parents not yet succeeded. */
  remaining: number[];
  input?: Flow;
  settled: number;
  /** Set once the nodes left pending were cancelled (the run is stopping). */
  swept?: boolean;
}

/** A wait (Step.wait): a sleep, or a wait for a signal or an event. */
export interface WaitStep extends StepBase {
  kind: "wait";
  spec: Wait;
  /** What reached it (a sleep passes it on). */
  input?: Flow;
  /** When it wakes, once reached: the end of a sleep, or a signal or event wait's timeout. */
  wakeAt?: number;
}

export type Step = TaskStep | GroupStep | StageStep | DagStep | WaitStep;

export type ScopeParent = { type: "root" } | { type: "branch"; group: number; index: number } | { type: "child"; task: number };

/** A pipeline's own initial parameters (shared, never copied). */
export interface ScopeInitial {
  args: Value[];
  kwargs: Record<string, Value>;
  state?: Value;
}

export interface Scope {
  id: number;
  /** Initial parameters, when the pipeline has any. */
  initial?: ScopeInitial;
  inline: boolean;
  steps: number[];
  finallyStep: number;
  parent: ScopeParent;
  /** Child-pipeline nesting depth: 0 for the root and its branches. */
  depth: number;
  /** Path prefix of the scope's steps ("" for the root). */
  path: string;
  /** For branches of a staged group: the stage step. */
  stage: number;
  status: "pending" | "running" | "finally" | "done";
  /** The outcome that came before the finally step, returned once it is done. */
  held?: Flow;
  outcome?: Flow;
}

/** The arrays of a run's steps and scopes, and how to add to them. */
export class RunGraph {
  /** Steps by id; id 0 is unused so that 0 can mean "none". */
  readonly steps: Step[] = [undefined as unknown as Step];
  readonly scopes: Scope[] = [];
  taskCount = 0;

  step(id: number): Step {
    return this.steps[id];
  }

  task(id: number): TaskStep {
    return this.steps[id] as TaskStep;
  }

  pathOf(step: Step): string {
    const prefix = this.scopes[step.scope].path;
    return prefix ? `${prefix}.${step.segment}` : step.segment;
  }

  /** Adds a pipeline and everything in it; returns the new scope id. */
  addScope(spec: Pipeline, parent: ScopeParent, depth: number, path: string, parentStep: number, stage = 0): number {
    const building = this.buildScope(spec, parent, depth, path, parentStep, stage);
    for (;;) {
      const next = building.next();
      if (next.done) return next.value;
    }
  }

  /**
   * addScope as a generator that pauses (yields) after each branch of a
   * group: a caller may let other work run in between (a 100,000-branch
   * group takes 100-200 ms to compile). The graph is the same either way.
   */
  *buildScope(spec: Pipeline, parent: ScopeParent, depth: number, path: string, parentStep: number, stage = 0): Generator<void, number, void> {
    const hasInitial = spec.initialArgs.length > 0 || Object.keys(spec.initialKwargs).length > 0 || spec.initialState !== undefined;
    const scope: Scope = {
      id: this.scopes.length,
      initial: hasInitial ? { args: spec.initialArgs, kwargs: spec.initialKwargs, state: spec.initialState } : undefined,
      inline: spec.inline,
      steps: [],
      finallyStep: 0,
      parent,
      depth,
      path,
      stage,
      status: "pending",
    };
    this.scopes.push(scope);
    // Sized up front, not grown by push(): an array grown by push() reserves room for 17
    // elements, and a 100,000-branch group has 100,000 scopes of one step each (~14 MB of empty slots).
    const steps: number[] = new Array(spec.steps.length);
    for (let i = 0; i < spec.steps.length; i++) {
      const s = spec.steps[i];
      const segment = `steps[${i}]`;
      switch (s.kind.case) {
        case "task":
          steps[i] = this.addTask(scope.id, i, segment, parentStep, "task", s.kind.value);
          break;
        case "exceptionally":
          steps[i] = this.addTask(scope.id, i, segment, parentStep, "exceptionally", s.kind.value);
          break;
        case "group":
          steps[i] = yield* this.buildGroup(scope.id, i, segment, parentStep, s.kind.value, depth);
          break;
        case "dag":
          steps[i] = this.addDag(scope.id, i, segment, parentStep, s.kind.value);
          break;
        case "wait":
          steps[i] = this.steps.length;
          this.steps.push({ kind: "wait", id: steps[i], scope: scope.id, index: i, segment, parentStep, status: "pending", spec: s.kind.value });
          this.taskCount++; // held like a task, and counted against the same limit (countTasks)
          break;
        default:
          throw new Error(`unvalidated pipeline: ${path || "root"} steps[${i}] has no kind`);
      }
    }
    scope.steps = steps;
    if (spec.finally) scope.finallyStep = this.addTask(scope.id, -1, "finally", parentStep, "finally", spec.finally);
    return scope.id;
  }

  private addTask(scope: number, index: number, segment: string, parentStep: number, role: TaskRole, call: TaskCall, dag?: number): number {
    const id = this.steps.length;
    this.steps.push({ kind: "task", id, scope, index, segment, parentStep, status: "pending", role, call, attempts: 0, dag });
    this.taskCount++;
    return id;
  }

  private *buildGroup(scope: number, index: number, segment: string, parentStep: number, spec: Group, depth: number): Generator<void, number, void> {
    const id = this.steps.length;
    const group: GroupStep = {
      kind: "group",
      id,
      scope,
      index,
      segment,
      parentStep,
      status: "pending",
      maxParallelism: spec.maxParallelism,
      returnExceptions: spec.returnExceptions,
      branches: [],
      stages: [],
      started: 0,
      running: 0,
      settled: 0,
    };
    this.steps.push(group);
    const n = spec.branches.length;
    const stageCount = spec.numStages > 1 ? spec.numStages : 0;
    // Balanced split: stage k holds branches [floor(k*n/S), floor((k+1)*n/S)).
    for (let k = 0; k < stageCount; k++) {
      const stageId = this.steps.length;
      const from = Math.floor((k * n) / stageCount);
      const to = Math.floor(((k + 1) * n) / stageCount);
      this.steps.push({
        kind: "stage",
        id: stageId,
        scope,
        index: k,
        segment: `${segment}.group.stages[${k}]`,
        parentStep: id,
        status: "pending",
        group: id,
        from,
        to,
        settled: 0,
      });
      group.stages.push(stageId);
    }
    const scopePath = this.scopes[scope].path;
    const base = scopePath ? `${scopePath}.${segment}.group` : `${segment}.group`;
    let stageIndex = 0;
    for (let j = 0; j < spec.branches.length; j++) {
      while (stageCount && j >= (this.steps[group.stages[stageIndex]] as StageStep).to) stageIndex++;
      const stage = stageCount ? group.stages[stageIndex] : 0;
      group.branches.push(
        yield* this.buildScope(spec.branches[j], { type: "branch", group: id, index: j }, depth, `${base}.branches[${j}]`, stage || id, stage),
      );
      yield;
    }
    return id;
  }

  private addDag(scope: number, index: number, segment: string, parentStep: number, spec: Dag): number {
    const id = this.steps.length;
    const dag: DagStep = {
      kind: "dag",
      id,
      scope,
      index,
      segment,
      parentStep,
      status: "pending",
      spec,
      nodes: [],
      dependents: [],
      parents: [],
      remaining: [],
      settled: 0,
    };
    this.steps.push(dag);
    const position = new Map(spec.nodes.map((n, k) => [n.id, k]));
    spec.nodes.forEach((node, k) => {
      dag.nodes.push(this.addTask(scope, k, `${segment}.dag.nodes[${k}]`, id, "dag_node", node.task!, id));
      dag.dependents.push([]);
      dag.parents.push(node.dependsOn.map((d) => position.get(d)!));
      dag.remaining.push(node.dependsOn.length);
    });
    dag.parents.forEach((ps, k) => ps.forEach((p) => dag.dependents[p].push(k)));
    return id;
  }
}
