// The `pipewright` command against a real server and worker: every verb, its
// output (table and JSON), its exit codes, and one clear line when the
// server cannot be reached. Run in-process through runCli with captured
// output; test/packages/ runs the installed executable for real.

import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/until.js";
import { runCli, type Io } from "../../server/cli/program.js";
import { EXIT } from "../../server/cli/output.js";
import * as ex from "../../examples/tasks.js";
import { currentTask, task } from "@pipewright/worker";
import { startTestServer, type TestServer } from "../support/test-server.js";

let ts: TestServer;
const gates = new Map<string, () => void>();
const stepping = task("stepping", async (name: string) => {
  currentTask().heartbeat({ done: 1, total: 4 });
  await new Promise<void>((resolve) => gates.set(name, resolve));
  return name;
});

beforeAll(async () => {
  ts = await startTestServer({ heartbeatIntervalMs: 200 });
  await ts.worker({ tasks: [...ex.allTasks, stepping], slots: 4, name: "cli-test-worker" });
});
afterAll(async () => {
  for (const g of gates.values()) g();
  await ts?.stop();
});

/** Runs `pipewright ...args` against the test server; returns its exit code and output. */
/** `live`: filled with the output as it is written (to wait on a verb that is still running). */
async function cli(
  args: string[],
  options: { stdin?: string; tty?: boolean; live?: { out: string } } = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (t) => {
      out += t;
      if (options.live) options.live.out = out;
    },
    err: (t) => (err += t),
    stdin: () => options.stdin ?? "",
    isTTY: options.tty ?? false,
    rows: 40,
  };
  const code = await runCli([...args, ...(args[0] === "server" ? [] : ["--address", ts.address])], io);
  return { code, out, err };
}

// multiply(3, 2) then divide by 2, in protobuf JSON (payload data is base64 JSON: "Mw==" is 3, "Mg==" is 2).
const PIPELINE = {
  steps: [
    { task: { task: "multiply", args: [{ payload: { data: "Mw==" } }, { payload: { data: "Mg==" } }] } },
    { task: { task: "divide", args: [{ payload: { data: "Mg==" } }] } },
  ],
};
const file = (json: unknown) => {
  const f = path.join(os.tmpdir(), `pipewright-cli-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(json));
  return f;
};

describe("pipewright submit, get, list, watch", () => {
  it("submit --wait prints the result and exits 0; a failing run exits 1 with its error on stderr", async () => {
    const ok = await cli(["submit", file(PIPELINE), "--wait"]);
    expect(ok).toMatchObject({ code: EXIT.ok, out: "3\n" });
    const failing = { steps: [{ task: { task: "fail", args: [{ payload: { data: Buffer.from('"no"').toString("base64") } }] } }] };
    const bad = await cli(["submit", file(failing), "--wait"]);
    expect(bad.code).toBe(EXIT.runFailed);
    expect(bad.err).toMatch(/^run [0-9a-f-]{36} failed: ValueError: no\n$/);
  });

  it("submit takes a whole SubmitRunRequest from stdin, --request-id makes it idempotent, and prints the run id", async () => {
    const request = { pipeline: PIPELINE, name: "from-stdin" };
    const first = await cli(["submit", "-", "--request-id", "cli-once"], { stdin: JSON.stringify(request) });
    const again = await cli(["submit", "-", "--request-id", "cli-once"], { stdin: JSON.stringify(request) });
    expect(first.code).toBe(EXIT.ok);
    expect(first.out).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(again.out).toBe(first.out);
    const got = await cli(["get", first.out.trim(), "-o", "json"]);
    expect(JSON.parse(got.out)).toMatchObject({ id: first.out.trim(), name: "from-stdin" });
  });

  it("get --steps shows the tree; list filters by state and name", async () => {
    const id = (await cli(["submit", file(PIPELINE), "--name", "listed"])).out.trim();
    await ts.client().run(id).result();
    const got = await cli(["get", id, "--steps"]);
    expect(got.out).toMatch(/state\s+succeeded/);
    expect(got.out).toMatch(/result\s+3/);
    expect(got.out).toContain("✓ multiply succeeded");
    expect(got.out).toContain("✓ divide succeeded");
    const listed = await cli(["list", "--name", "listed", "--state", "succeeded"]);
    expect(listed.out.split("\n")[0]).toMatch(/^ID\s+NAME\s+STATE\s+CREATED\s+DURATION$/);
    expect(listed.out).toContain(id);
    const none = await cli(["list", "--name", "listed", "--state", "failed", "-o", "json"]);
    expect(JSON.parse(none.out)).toEqual([]);
    expect((await cli(["list", "--state", "sleeping"])).code).toBe(EXIT.usage);
  });

  it("watch prints one line per change off a terminal, progress included, and exits with the outcome", async () => {
    const id = (
      await cli(["submit", file({ steps: [{ task: { task: "stepping", args: [{ payload: { data: Buffer.from('"w1"').toString("base64") } }] } }] })])
    ).out.trim();
    const live = { out: "" };
    const watching = cli(["watch", id], { live });
    // The gate opens once the watch has shown the task running with its progress (not after a guessed wait).
    await until("the watch shows the progress", () => live.out.includes("1/4"), 20_000);
    gates.get("w1")?.();
    const w = await watching;
    expect(w.code).toBe(EXIT.ok);
    expect(w.out).toMatch(/steps\[0\]\s+○ stepping queued/);
    expect(w.out).toMatch(/steps\[0\]\s+▶ stepping running/);
    expect(w.out).toContain("[████░░░░░░░░░░░░] 25% 1/4");
    expect(w.out).toMatch(/run succeeded: "w1"/);
  });

  it("watch on a terminal redraws the tree in place", async () => {
    const id = (
      await cli(["submit", file({ steps: [{ task: { task: "stepping", args: [{ payload: { data: Buffer.from('"w2"').toString("base64") } }] } }] })])
    ).out.trim();
    const live = { out: "" };
    const watching = cli(["watch", id], { tty: true, live });
    await until("the watch shows the progress", () => live.out.includes("1/4"), 20_000);
    gates.get("w2")?.();
    const w = await watching;
    expect(w.code).toBe(EXIT.ok);
    expect(w.out).toContain("\x1b[2A\r\x1b[0J"); // back up over the two lines drawn, clear, draw again
    expect(w.out.split("\x1b[0J").at(-1)).toMatch(/run [0-9a-f-]{36}\s+succeeded[\s\S]*✓ stepping succeeded[\s\S]*result: "w2"/);
  });

  it("cancel, pause and resume say what the run is now; a finished run cannot be cancelled (exit 65)", async () => {
    const id = (
      await cli(["submit", file({ steps: [{ task: { task: "stepping", args: [{ payload: { data: Buffer.from('"c1"').toString("base64") } }] } }] })])
    ).out.trim();
    expect((await cli(["pause", id])).out).toBe(`run ${id} paused\n`);
    expect((await cli(["resume", id])).out).toBe(`run ${id} running\n`);
    expect((await cli(["cancel", id, "--reason", "test"])).out).toMatch(new RegExp(`^run ${id} (cancelling|cancelled)\\n$`));
    await ts.client().rpc.waitRun({ runId: id });
    const again = await cli(["cancel", id]);
    expect(again.code).toBe(EXIT.refused);
    expect(again.err).toMatch(/^error: failed precondition: /);
  });
});

describe("pipewright delete", () => {
  it("deletes a finished run (get then says not found); an active run is refused (exit 65) and stays", async () => {
    const gated = { steps: [{ task: { task: "stepping", args: [{ payload: { data: Buffer.from('"d1"').toString("base64") } }] } }] };
    const active = (await cli(["submit", file(gated)])).out.trim();
    const refused = await cli(["delete", active]);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.err).toMatch(/^error: failed precondition: .*cancel it first/);
    expect((await cli(["get", active])).code).toBe(EXIT.ok);
    const doneId = (await cli(["submit", file(PIPELINE)])).out.trim();
    await ts.client().rpc.waitRun({ runId: doneId });
    expect((await cli(["delete", doneId])).out).toBe(`run ${doneId} deleted\n`);
    const gone = await cli(["get", doneId]);
    expect(gone.code).toBe(EXIT.refused);
    expect(gone.err).toMatch(/^error: not found: /);
    expect((await cli(["delete", doneId])).code).toBe(EXIT.refused);
    gates.get("d1")?.();
  });
});

describe("pipewright submit with a delayed start", () => {
  it("--delay and --start-at set the run's start; a time that is not one is exit 64", async () => {
    const delayed = (await cli(["submit", file(PIPELINE), "--delay", "60000"])).out.trim();
    const run = (await ts.client().rpc.getRun({ runId: delayed })).run!;
    expect(Number(run.startTime!.seconds) - Number(run.createTime!.seconds)).toBeGreaterThanOrEqual(59);
    const at = new Date(Date.now() + 3600_000);
    const timed = (await cli(["submit", file(PIPELINE), "--start-at", at.toISOString()])).out.trim();
    expect(Number((await ts.client().rpc.getRun({ runId: timed })).run!.startTime!.seconds)).toBe(Math.floor(at.getTime() / 1000));
    const listed = await cli(["list", "--scheduled"]);
    expect(listed.out).toContain(delayed);
    expect(listed.out).toMatch(new RegExp(`${delayed}.*scheduled \\(starts `));
    const bad = await cli(["submit", file(PIPELINE), "--start-at", "tomorrow-ish"]);
    expect([bad.code, bad.err]).toEqual([EXIT.usage, expect.stringMatching(/^error: --start-at: not a time/)]);
    for (const id of [delayed, timed]) await ts.client().rpc.cancelRun({ runId: id });
  });
});

describe("pipewright signal", () => {
  it("delivers to a waiting step, says a repeated id changed nothing, shows the wait in get --steps, and refuses bad JSON (exit 64)", async () => {
    const waiting = {
      steps: [{ wait: { signal: "approve" } }, { wait: { signal: "approve" } }, { task: { task: "multiply", args: [{ payload: { data: "Mg==" } }] } }],
    };
    const id = (await cli(["submit", file(waiting)])).out.trim();
    await until("the wait to begin", async () => (await cli(["get", id, "--steps"])).out.includes("signal approve"));
    const steps = await cli(["get", id, "--steps"]);
    expect(steps.out).toMatch(/signal approve\s+waiting/);
    const sent = await cli(["signal", id, "approve", "--payload", "3", "--id", "once"]);
    expect([sent.code, sent.err]).toEqual([0, ""]);
    expect(sent.out).toBe(`signal approve to run ${id}: delivered to a waiting step\n`);
    expect((await cli(["signal", id, "approve", "--payload", "3", "--id", "once"])).out).toBe(
      `signal approve to run ${id}: a repeat of a signal already applied: nothing changed\n`,
    );
    expect((await cli(["signal", id, "approve", "--payload", "5"])).out).toBe(`signal approve to run ${id}: delivered to a waiting step\n`); // the second wait
    expect(await ts.client().run(id).result()).toBe(10); // 5 (the second wait's payload) × 2
    const bad = await cli(["signal", id, "approve", "--payload", "{nope"]);
    expect([bad.code, bad.err]).toEqual([EXIT.usage, expect.stringMatching(/^error: --payload: not JSON/)]);
    const finished = await cli(["signal", id, "approve"]);
    expect([finished.code, finished.err]).toEqual([EXIT.refused, expect.stringContaining("a signal can no longer reach it")]);
  });
});

describe("pipewright resubmit and counts", () => {
  it("resubmit starts a new run of the same pipeline and prints its id; counts shows each state", async () => {
    const first = (await cli(["submit", file(PIPELINE), "--name", "twice"])).out.trim();
    await ts.client().rpc.waitRun({ runId: first });
    const second = (await cli(["resubmit", first])).out.trim();
    expect(second).toMatch(/^[0-9a-f-]{36}$/);
    expect(second).not.toBe(first);
    const [a, b] = await Promise.all([first, second].map(async (runId) => (await ts.client().rpc.waitRun({ runId })).run!));
    expect(b.name).toBe("twice");
    expect(b.outcome).toEqual(a.outcome);
    const counts = await cli(["counts"]);
    expect(counts.out).toMatch(/^STATE\s+RUNS\n/);
    expect(counts.out).toMatch(/\nsucceeded\s+\d+\n/);
    expect(JSON.parse((await cli(["counts", "-o", "json"])).out).limit).toBe("10000");
    expect((await cli(["resubmit", "00000000-0000-4000-8000-000000000000"])).code).toBe(EXIT.refused);
  });
});

describe("pipewright workers, status, breakers", () => {
  it("workers lists the worker with its slots; status and breakers answer in table and JSON", async () => {
    const table = await cli(["workers"]);
    expect(table.out).toMatch(/^ID\s+NAME\s+TASKS\s+QUEUES\s+SLOTS/);
    expect(table.out).toMatch(/cli-test-worker\s+.*\s+default\s+\d+\/4/);
    const json = JSON.parse((await cli(["workers", "-o", "json"])).out);
    expect(json[0]).toMatchObject({ name: "cli-test-worker", slots: 4, state: "active" });
    expect((await cli(["status"])).out).toMatch(/workers\s+1/);
    expect(JSON.parse((await cli(["status", "-o", "json"])).out)).toMatchObject({ workers: "1" });
    expect((await cli(["breakers"])).out).toMatch(/^TASK\s+STATE/);
  });
});

describe("errors", () => {
  it("an unreachable server is one line and exit 69; bad input is exit 64", async () => {
    let err = "";
    const code = await runCli(["get", "00000000-0000-0000-0000-000000000000", "--address", "127.0.0.1:1"], {
      out: () => {},
      err: (t) => (err += t),
      stdin: () => "",
      isTTY: false,
    });
    expect(code).toBe(EXIT.unavailable);
    expect(err).toBe("cannot reach the Pipewright server at 127.0.0.1:1 (is it running? set --address or PIPEWRIGHT_ADDRESS)\n");
    const notJson = await cli(["submit", "-"], { stdin: "{ not json" });
    expect(notJson.code).toBe(EXIT.usage);
    expect(notJson.err).toMatch(/^error: the input is not JSON/);
    const unknown = await cli(["frobnicate"]);
    expect(unknown.code).toBe(EXIT.usage);
  });
});
