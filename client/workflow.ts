// DAG workflows: nodes with depends_on; a node runs when every node it depends
// on has succeeded and may receive their results (a map keyed by node id).
// A Workflow is built up with add(); toPipeline() freezes it into an
// immutable Pipeline (one DAG step) that can be submitted or composed.
//
// @example
//   const wf = new Workflow();
//   const a = wf.add(download, { args: ["https://example.com/data.csv"] });
//   const b = wf.add(processData, { dependsOn: [a] });
//   wf.add(analyze, { dependsOn: [b] });
//   await client.submit(wf.toPipeline());

import { create } from "@bufbuild/protobuf";
import { DagNodeSchema, DagSchema, ParentArgumentSchema, ParentResults, StepSchema, type DagNode } from "@pipewright/protocol";
import { Pipeline } from "./pipeline-builder.js";
import type { TaskRef } from "./task-ref.js";

/** A node of a Workflow, standing for its result. */
export class NodeRef<R = unknown> {
  /** Type-only marker of the result type. */
  declare readonly __result: R;
  constructor(readonly id: string) {}
}

export type ParentResultsMode = "auto" | "always" | "never";

export interface NodeOptions {
  /** Node id, unique in the workflow (default: the task name, numbered if taken). */
  id?: string;
  /** The task's own arguments. */
  args?: unknown[];
  /** Nodes that must succeed first. */
  dependsOn?: NodeRef<any>[];
  /**
   * How the node receives its parents' results (an object keyed by node id):
   * "auto" (default) when the task was defined with `parentResults: true`,
   * "always" as the first argument, "never".
   */
  parentResults?: ParentResultsMode;
  /** Arguments filled with parents' results: position in `args` -> node. */
  parentArguments?: { position: number; node: NodeRef<any> }[];
  /** Root nodes: do not receive the previous step's result. */
  ignoreInput?: boolean;
}

const MODES: Record<ParentResultsMode, ParentResults> = { auto: ParentResults.AUTO, always: ParentResults.ALWAYS, never: ParentResults.NEVER };

export class Workflow {
  private readonly nodes: DagNode[] = [];
  private readonly ids = new Set<string>();

  constructor(readonly name = "") {}

  add<A extends unknown[], R>(task: TaskRef<A, R>, options: NodeOptions = {}): NodeRef<R> {
    let id = options.id ?? task.name;
    if (!options.id) for (let n = 2; this.ids.has(id); n++) id = `${task.name}-${n}`;
    if (this.ids.has(id)) throw new Error(`workflow ${JSON.stringify(this.name)}: node id ${JSON.stringify(id)} is taken`);
    this.ids.add(id);
    this.nodes.push(
      create(DagNodeSchema, {
        id,
        task: task.toCall(options.args ?? [], { ignoreInput: options.ignoreInput }),
        dependsOn: (options.dependsOn ?? []).map((n) => n.id),
        parentResults: MODES[options.parentResults ?? "auto"],
        parentArguments: (options.parentArguments ?? []).map((pa) => create(ParentArgumentSchema, { position: pa.position, node: pa.node.id })),
      }),
    );
    return new NodeRef<R>(id);
  }

  /**
   * The workflow as a one-step pipeline. Its result is the list of the given
   * nodes' results, in order; with no outputs, an object mapping every sink
   * node (one nothing depends on) to its result.
   */
  toPipeline(): Pipeline<Record<string, unknown>>;
  toPipeline<const O extends readonly NodeRef<any>[]>(outputs: O): Pipeline<{ -readonly [K in keyof O]: O[K] extends NodeRef<infer R> ? R : never }>;
  toPipeline(outputs: readonly NodeRef<any>[] = []): Pipeline<any> {
    const dag = create(DagSchema, { nodes: this.nodes.map((n) => create(DagNodeSchema, n)), outputs: outputs.map((o) => o.id) });
    return Pipeline.ofStep(create(StepSchema, { kind: { case: "dag", value: dag } }));
  }
}
