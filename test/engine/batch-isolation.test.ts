// An item the database refuses fails alone: its batch neighbours commit.
// The refusals are real: a trigger in the test's own database raises a data
// exception for marked rows, as PostgreSQL does for text it cannot store or a
// value too large for one statement.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { taskRef } from "../../client/task-ref.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { until } from "../support/until.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.server.sql.unsafe(`
    create function refuse_marked_run() returns trigger language plpgsql as $$
    begin
      if new.name = 'refused' then raise exception 'marked run refused by the test' using errcode = '22023'; end if;
      return new;
    end $$;
    create function refuse_marked_task() returns trigger language plpgsql as $$
    begin
      if new.task = 'refused_next' then raise exception 'marked task refused by the test' using errcode = '22023'; end if;
      return new;
    end $$;
    create trigger refuse_marked_runs before insert on runs for each row execute function refuse_marked_run();
    create trigger refuse_marked_queue before insert on task_queue for each row execute function refuse_marked_task();`);
  await ts.worker({ tasks: ex.allTasks, slots: 16 });
});
afterAll(() => ts?.stop());

describe("a failing item fails alone", () => {
  it("submits the database refuses get INVALID_ARGUMENT; 100 other submits at the same moment succeed", async () => {
    const client = ts.client();
    const good = Array.from({ length: 100 }, (_, i) => client.submit(ex.multiply.send(i, 3)).then((r) => r.result()));
    const bad = Array.from({ length: 3 }, () =>
      client.submit(ex.multiply.send(1, 1), { name: "refused" }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      ),
    );
    const errors = await Promise.all(bad);
    for (const err of errors) {
      expect(grpc.status[err!.code]).toBe("INVALID_ARGUMENT");
      expect(err!.details).toMatch(/^the submission could not be stored: the database refused it \(ref [0-9a-f]{8}\)$/);
    }
    expect(await Promise.all(good)).toEqual(Array.from({ length: 100 }, (_, i) => i * 3));
    const [{ n }] = await ts.server.sql<{ n: number }[]>`select count(*)::int as n from runs where name = 'refused'`;
    expect(n).toBe(0);
  });

  it("a result whose consequences cannot be stored fails its attempt with pipewright.InvalidResult, once; the other runs' results commit", async () => {
    const client = ts.client();
    const refusedNext = taskRef<[number], number>("refused_next");
    const good = await Promise.all(Array.from({ length: 40 }, (_, i) => client.submit(ex.multiply.send(i, 2).continueWith(ex.add, 1))));
    const bad = await Promise.all(Array.from({ length: 3 }, (_, i) => client.submit(ex.multiply.send(i, 2).continueWith(refusedNext))));
    expect(await Promise.all(good.map((r) => r.result()))).toEqual(Array.from({ length: 40 }, (_, i) => i * 2 + 1));
    for (const r of bad) {
      const { run } = await client.rpc.waitRun({ runId: r.id, timeout: { seconds: 20n, nanos: 0 } });
      expect(RunState[run!.state]).toBe("FAILED");
      const error = run!.outcome!.kind.value as { type: string; message: string };
      expect(error.type).toBe("pipewright.InvalidResult");
      expect(error.message).toMatch(/could not be stored: the database refused it/);
    }
    // Nothing is left held in memory (under load the last ones may take a moment to be let go).
    await until("no run left active in memory", () => ts.server.engine.stats().activeRuns === 0, 10_000);
  });
});
