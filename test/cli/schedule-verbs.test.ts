// `pipewright schedule ...` against a real server and worker, in-process
// through runCli with captured output: each verb, its table and JSON output,
// and its exit codes for bad input, refusals and unknown schedules.

import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCliAt } from "../support/run-cli.js";
import { EXIT } from "../../server/cli/output.js";
import * as ex from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
  await ts.worker({ tasks: ex.allTasks, slots: 4 });
});
afterAll(() => ts?.stop());

const cli = (args: string[], stdin = "") => runCliAt(ts.address, args, stdin);

// multiply(3, 2), in protobuf JSON (payload data is base64 JSON: "Mw==" is 3, "Mg==" is 2).
const PIPELINE = { steps: [{ task: { task: "multiply", args: [{ payload: { data: "Mw==" } }, { payload: { data: "Mg==" } }] } }] };
const file = path.join(os.tmpdir(), `pipewright-schedule-cli-${process.pid}.json`);
writeFileSync(file, JSON.stringify({ pipeline: PIPELINE, name: "from-file", runTimeout: "30s" }));

describe("pipewright schedule", () => {
  it("create, get, list, update, pause, resume, trigger, fires, delete", async () => {
    const created = await cli([
      "schedule",
      "create",
      "cli-nightly",
      "--cron",
      "0 0 2 * * *",
      "--time-zone",
      "Europe/Berlin",
      "--pipeline",
      file,
      "--overlap",
      "allow",
    ]);
    expect(created.code, created.err).toBe(EXIT.ok);
    expect(created.out).toMatch(/schedule\s+cli-nightly/);
    expect(created.out).toMatch(/time zone\s+Europe\/Berlin/);
    expect(created.out).toMatch(/run name\s+from-file/); // the SubmitRunRequest's name
    expect(created.out).toMatch(/run timeout\s+30000 ms/);

    const got = JSON.parse((await cli(["schedule", "get", "cli-nightly", "-o", "json"])).out);
    expect(got).toMatchObject({ id: "cli-nightly", cron: "0 0 2 * * *", overlap: "allow", paused: false, catchupWindowMs: 60000 });
    expect(new Date(got.nextFireAt).getUTCHours()).toBeLessThanOrEqual(1); // 02:00 in Berlin is 00:00 or 01:00 UTC

    const listed = await cli(["schedule", "list"]);
    expect(listed.out).toMatch(/^ID\s+CRON\s+ZONE\s+OVERLAP\s+STATE\s+NEXT FIRE\s+LAST FIRE/);
    expect(listed.out).toMatch(/cli-nightly\s+0 0 2 \* \* \*\s+Europe\/Berlin\s+allow\s+active/);

    // update changes what is given and keeps the rest (the pipeline included).
    const updated = JSON.parse((await cli(["schedule", "update", "cli-nightly", "--cron", "0 30 3 * * *", "-o", "json"])).out);
    expect(updated).toMatchObject({ cron: "0 30 3 * * *", timeZone: "Europe/Berlin", overlap: "allow", runName: "from-file" });

    expect((await cli(["schedule", "pause", "cli-nightly"])).out).toMatch(/state\s+paused/);
    expect((await cli(["schedule", "resume", "cli-nightly"])).out).toMatch(/state\s+active/);

    const first = await cli(["schedule", "trigger", "cli-nightly", "--request-id", "deploy-1"]);
    const runId = first.out.trim();
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await cli(["schedule", "trigger", "cli-nightly", "--request-id", "deploy-1"])).out.trim()).toBe(runId);
    expect(await ts.client().run<number>(runId).result(10_000)).toBe(6);

    const fires = await cli(["schedule", "fires", "cli-nightly"]);
    expect(fires.out).toMatch(/^FIRE TIME\s+OUTCOME\s+RUN\s+REASON/);
    expect(fires.out).toContain(`started (trigger)  ${runId}`);

    expect((await cli(["schedule", "delete", "cli-nightly"])).out).toBe("deleted cli-nightly\n");
    const gone = await cli(["schedule", "get", "cli-nightly"]);
    expect([gone.code, gone.err]).toEqual([EXIT.refused, "error: not found: no schedule with id cli-nightly\n"]);
  });

  it("reads the pipeline from stdin, and a bare Pipeline", async () => {
    const r = await cli(["schedule", "create", "cli-stdin", "--cron", "*/5 * * * *", "--pipeline", "-", "-o", "json"], JSON.stringify(PIPELINE));
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(JSON.parse(r.out)).toMatchObject({ id: "cli-stdin", runName: "", timeZone: "UTC", overlap: "skip" });
    await cli(["schedule", "delete", "cli-stdin"]);
  });

  it("bad input: usage errors before any call, refusals naming the field", async () => {
    const missing = await cli(["schedule", "create", "x", "--pipeline", file]);
    expect([missing.code, missing.err]).toEqual([EXIT.usage, "error: schedule create needs --cron and --pipeline\n"]);
    const notJson = path.join(os.tmpdir(), `pipewright-schedule-cli-${process.pid}.txt`);
    writeFileSync(notJson, "{ nope");
    expect((await cli(["schedule", "create", "x", "--cron", "* * * * *", "--pipeline", notJson])).code).toBe(EXIT.usage);
    const badCron = await cli(["schedule", "create", "x", "--cron", "61 * * * *", "--time-zone", "Nowhere/Land", "--pipeline", file]);
    expect(badCron.code).toBe(EXIT.refused);
    expect(badCron.err).toContain("schedule.cron: invalid value for minute: 61");
    expect(badCron.err).toContain("schedule.time_zone");
    expect((await cli(["schedule", "create", "x", "--cron", "* * * * *", "--pipeline", file, "--overlap", "sometimes"])).code).not.toBe(EXIT.ok);
    expect((await cli(["schedule", "list", "--page-size", "0"])).code).toBe(EXIT.usage);
    expect((await cli(["schedule", "list", "-o", "json"])).out).toContain('"schedules": []');
  });
});
