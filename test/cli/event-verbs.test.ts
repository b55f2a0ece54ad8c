// `pipewright event …` and `pipewright trigger …` against a real server and
// worker, in-process through runCli with captured output (as cli.test.ts).

import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliAt } from "../support/run-cli.js";
import { EXIT } from "../../server/cli/output.js";
import { task } from "@pipewright/worker";
import { startTestServer, type TestServer } from "../support/test-server.js";

const echo = task("echo", (...args: unknown[]) => args);
let ts: TestServer;
let pipelineFile: string;

beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: [echo] });
  await ts.worker({ tasks: [echo], namespace: "cli-ns" });
  pipelineFile = path.join(os.tmpdir(), `pipewright-trigger-${process.pid}.json`);
  // echo("tail"): "InRhaWwi" is the base64 of the JSON "tail".
  writeFileSync(pipelineFile, JSON.stringify({ steps: [{ task: { task: "echo", args: [{ payload: { data: "InRhaWwi" } }] } }] }));
});
afterAll(() => ts?.stop());

const cli = (args: string[], stdin = "") => runCliAt(ts.address, args, stdin);

describe("pipewright event / trigger", () => {
  it("creates a trigger from a pipeline file, publishes an event that starts it, once per event id", async () => {
    const created = await cli(["trigger", "create", "on-signup", pipelineFile, "--event", "user.signup", "--filter", 'plan="pro"', "--run-name", "welcome"]);
    expect(created.err).toBe("");
    expect(created.code).toBe(EXIT.ok);
    expect(created.out).toMatch(/trigger\s+on-signup/);
    expect(created.out).toMatch(/filter\s+plan = "pro"/);

    const published = await cli(["event", "publish", "user.signup", "--payload", '{"plan":"pro","user":7}', "--id", "signup-7", "-o", "json"]);
    expect(published.code).toBe(EXIT.ok);
    const answer = JSON.parse(published.out) as { eventId: string; duplicate: boolean; runs: { triggerId: string; runId: string }[] };
    expect([answer.eventId, answer.duplicate, answer.runs.map((r) => r.triggerId)]).toEqual(["signup-7", false, ["on-signup"]]);
    const client = ts.client();
    expect(await client.run(answer.runs[0].runId).result(10_000)).toEqual([{ plan: "pro", user: 7 }, "tail"]);

    const again = await cli(["event", "publish", "user.signup", "--payload", '{"plan":"pro"}', "--id", "signup-7"]);
    expect(again.out).toContain("event signup-7 (published before: nothing new started)");
    expect(again.out).toContain(answer.runs[0].runId);
    // The filter decides: a free plan starts nothing.
    const free = await cli(["event", "publish", "user.signup", "--payload", '{"plan":"free"}']);
    expect(free.out).not.toContain("on-signup");

    const listed = await cli(["event", "list", "--name", "user.signup"]);
    expect(listed.out.split("\n")[0]).toMatch(/^EVENT\s+NAME\s+PUBLISHED\s+RUNS\s+PAYLOAD/);
    expect(listed.out).toContain("signup-7");
    expect(listed.out).toContain('{"plan":"free"}');
  });

  it("gets, lists, pauses, resumes and deletes triggers; an unknown one is refused", async () => {
    await cli(
      ["trigger", "create", "lifecycle", "-", "--event", "x"],
      JSON.stringify({ pipeline: { steps: [{ task: { task: "echo" } }] }, name: "from-request" }),
    );
    expect((await cli(["trigger", "get", "lifecycle"])).out).toMatch(/run name\s+from-request/);
    expect((await cli(["trigger", "pause", "lifecycle"])).out).toMatch(/state\s+paused/);
    const list = JSON.parse((await cli(["trigger", "list", "-o", "json"])).out) as { triggerId: string; paused?: boolean }[];
    expect(list.find((t) => t.triggerId === "lifecycle")?.paused).toBe(true);
    expect((await cli(["trigger", "resume", "lifecycle"])).out).toMatch(/state\s+active/);
    expect((await cli(["trigger", "delete", "lifecycle"])).out).toBe("deleted trigger lifecycle\n");
    const gone = await cli(["trigger", "get", "lifecycle"]);
    expect(gone.code).toBe(EXIT.refused);
    expect(gone.err).toContain("lifecycle");
  });

  it("works in the namespace named, and refuses bad input with a usage error", async () => {
    await cli(["trigger", "create", "ns-only", pipelineFile, "--event", "ns.event", "--namespace", "cli-ns"]);
    expect((await cli(["trigger", "list"])).out).not.toContain("ns-only");
    expect((await cli(["trigger", "list", "--namespace", "cli-ns"])).out).toContain("ns-only");
    const published = await cli(["event", "publish", "ns.event", "--namespace", "cli-ns"]);
    expect(published.out).toContain("ns-only");
    expect((await cli(["event", "publish", "x", "--payload", "{oops"])).code).toBe(EXIT.usage);
    expect((await cli(["trigger", "create", "t", pipelineFile, "--event", "x", "--filter", "no-equals-sign"])).code).toBe(EXIT.usage);
    const badName = await cli(["event", "publish", "bad name"]);
    expect(badName.code).toBe(EXIT.refused);
    expect(badName.err).toContain("name");
  });
});
