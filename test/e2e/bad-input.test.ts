// Bad input gets INVALID_ARGUMENT listing every violation, and writes nothing.

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PipelineSchema,
  StepSchema,
  DagSchema,
  DagNodeSchema,
  TaskCallSchema,
  GroupSchema,
  type ParentResults,
} from "../../proto/gen/pipewright/v1/pipeline_pb.js";
import { RunService } from "../../proto/gen/pipewright/v1/run_service_pb.js";
import { createClient } from "../../proto/runtime/grpc-client.js";
import { inParallel } from "../../client/pipeline-builder.js";
import { PipelineValidationError } from "../../client/pipeline-builder.js";
import { taskRef } from "../../client/task-ref.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(() => ts?.stop());

const task = (name: string) => create(StepSchema, { kind: { case: "task", value: create(TaskCallSchema, { task: name }) } });

async function counts() {
  const [r] = await ts.server.sql<{ runs: number; queue: number; events: number }[]>`
    select (select count(*) from runs)::int as runs, (select count(*) from task_queue)::int as queue, (select count(*) from run_events)::int as events`;
  return r;
}

async function expectRejected(call: Promise<unknown>, code: grpc.status): Promise<string> {
  const err = (await call.then(
    () => undefined,
    (e) => e,
  )) as grpc.ServiceError | undefined;
  expect(err, "the call should have failed").toBeDefined();
  expect(grpc.status[err!.code]).toBe(grpc.status[code]);
  return err!.details;
}

describe("invalid submissions", () => {
  it("lists every violation and writes nothing", async () => {
    const rpc = createClient(RunService, ts.address);
    const before = await counts();
    // Each branch is a pipeline with a problem; the group itself has a negative limit.
    const pipeline = create(PipelineSchema, {
      steps: [
        create(StepSchema, {
          kind: {
            case: "group",
            value: create(GroupSchema, {
              maxParallelism: -3,
              branches: [
                create(PipelineSchema, { steps: [] }), // no steps
                create(PipelineSchema, { steps: [task("")] }), // empty task name
                create(PipelineSchema, {
                  steps: [
                    create(StepSchema, {
                      kind: {
                        case: "dag",
                        value: create(DagSchema, {
                          nodes: [create(DagNodeSchema, { id: "a", task: create(TaskCallSchema, { task: "x" }), parentResults: 42 as ParentResults })],
                        }),
                      },
                    }),
                  ],
                }), // unknown enum value
              ],
            }),
          },
        }),
      ],
    });
    const details = await expectRejected(rpc.submitRun({ requestId: "bad-1", pipeline }), grpc.status.INVALID_ARGUMENT);
    expect(details).toContain("4 violations");
    expect(details).toContain("pipeline.steps[0].group.max_parallelism: must be >= 0 (0 = unlimited), got -3");
    expect(details).toContain("pipeline.steps[0].group.branches[0].steps: must not be empty");
    expect(details).toContain("pipeline.steps[0].group.branches[1].steps[0].task.task: must not be empty");
    expect(details).toContain("pipeline.steps[0].group.branches[2].steps[0].dag.nodes[0].parent_results: unknown enum value 42");
    expect(await counts()).toEqual(before);
    rpc.close();
  });

  it("rejects a pipeline with no steps at all, and a missing pipeline", async () => {
    const rpc = createClient(RunService, ts.address);
    const before = await counts();
    expect(await expectRejected(rpc.submitRun({ pipeline: create(PipelineSchema, {}) }), grpc.status.INVALID_ARGUMENT)).toContain(
      "pipeline.steps: must not be empty",
    );
    expect(await expectRejected(rpc.submitRun({}), grpc.status.INVALID_ARGUMENT)).toContain("pipeline: must be set");
    expect(await counts()).toEqual(before);
    rpc.close();
  });

  it("rejects a whole batch when one request is bad, naming it", async () => {
    const rpc = createClient(RunService, ts.address);
    const before = await counts();
    const good = create(PipelineSchema, { steps: [task("multiply")] });
    const details = await expectRejected(
      rpc.batchSubmitRuns({ requests: [{ pipeline: good }, { pipeline: create(PipelineSchema, { steps: [task("no spaces allowed")] }) }] }),
      grpc.status.INVALID_ARGUMENT,
    );
    expect(details).toContain("requests[1].pipeline.steps[0].task.task");
    expect(await counts()).toEqual(before);
    rpc.close();
  });

  it("the client refuses the same pipelines before sending, with the same messages", () => {
    const x = taskRef<[number], number>("x");
    const bad = inParallel([x.send(1)], { maxParallelism: -1, numStages: 5 });
    let caught: unknown;
    try {
      bad.toProto();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PipelineValidationError);
    expect((caught as PipelineValidationError).violations.map((v) => v.field)).toEqual(["steps[0].group.max_parallelism", "steps[0].group.num_stages"]);
  });

  it("answers NOT_FOUND for an unknown run and INVALID_ARGUMENT for a malformed id", async () => {
    const rpc = createClient(RunService, ts.address);
    await expectRejected(rpc.getRun({ runId: "00000000-0000-0000-0000-000000000000" }), grpc.status.NOT_FOUND);
    expect(await expectRejected(rpc.getRun({ runId: "nope" }), grpc.status.INVALID_ARGUMENT)).toContain("run_id");
    rpc.close();
  });
});
