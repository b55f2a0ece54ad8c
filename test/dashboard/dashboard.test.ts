// The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
// server, PostgreSQL and worker: the page served on --dashboard-address, talking to the JSON
// gateway with the same tokens and scopes as gRPC clients. Nothing is mocked: what the page
// shows is what the server said.
//
// Where chromium is missing (apt-get install chromium; .ci/run installs it) the tests report
// themselves skipped with the reason. PIPEWRIGHT_SCREENSHOTS=1 also writes the README's two
// screenshots, docs/dashboard-runs.png and docs/dashboard-run.png.

import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { chain } from "../../client/canvas.js";
import { PipewrightClient } from "../../client/client.js";
import { inParallel, waitForSignal } from "../../client/pipeline-builder.js";
import { taskRef } from "../../client/task-ref.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { createToken } from "../../server/api/tokens.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { writeTokensFile } from "../support/tokens-file.js";
import * as t from "../support/test-tasks.js";
import { until } from "../support/until.js";
import { launchBrowser, missingChromium as missing, openPage as open, root } from "./browser.js";

if (missing) console.log(`dashboard.test.ts: the browser tests are skipped: ${missing}`);
const skipNote = missing ? ` [skipped: ${missing}]` : "";
const screenshots = process.env.PIPEWRIGHT_SCREENSHOTS === "1";

/** A gate step that ignores the previous result (`gate` takes its gate's name first). */
const gate = taskRef<[name: string], string>("gate");

let browser: Browser;
beforeAll(async () => {
  if (!missing) browser = await launchBrowser();
});
afterAll(async () => {
  t.resetGates();
  await browser?.close();
});

/** Uncaught errors and CSP refusals of the pages a test opened: each test ends asserting there were none. */
const pageErrors: string[] = [];
afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, "uncaught errors in the page").toEqual([]);
});

/** A fresh page (its own sessionStorage) whose uncaught errors fail the test. */
const openPage = (contexts: BrowserContext[]): Promise<Page> => open(browser, contexts, pageErrors);

/** The state the page shows for the step at `stepPath` (its row's data-state), or undefined if it has none. */
async function stepState(page: Page, stepPath: string): Promise<string | undefined> {
  const row = page.locator(`li.step[data-step-path="${stepPath}"]`);
  return (await row.count()) ? ((await row.first().getAttribute("data-state")) ?? undefined) : undefined;
}

/** The run state in the run page's header. */
function runStateBadge(page: Page) {
  return page.locator(".run-header h1 .badge");
}

describe(`the dashboard, against a real server and worker${skipNote}`, () => {
  let ts: TestServer;
  let client: PipewrightClient;
  let base: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (missing) return;
    ts = await startTestServer({ dashboardAddress: "127.0.0.1:0" });
    await ts.worker({ tasks: t.testTasks, slots: 8 });
    client = ts.client();
    base = `http://${ts.server.dashboardAddress}/`;
  });
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    t.resetGates();
    await ts?.stop();
  });

  it.skipIf(!!missing)("a run submitted by a client appears in the runs list, and the name filter finds it", async () => {
    const run = await client.submit(gate.si("list-1"), { name: "appears-in-list" });
    const page = await openPage(contexts);
    await page.goto(base);
    const row = page.locator(`tr[data-run-id="${run.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator("a").textContent()).toBe("appears-in-list");
    expect(await row.locator(".badge").getAttribute("data-state")).toBe("RUNNING");
    // The list refreshes by itself: the run's end shows without a reload.
    t.openGate("list-1");
    await row.locator('.badge[data-state="SUCCEEDED"]').waitFor({ timeout: 10_000 });
    // Filter by name: only that run is left.
    await client.submit(t.echo.send(1), { name: "another-name" });
    await page.locator('form.filters input[name="name"]').fill("appears-in-list");
    await page.locator("form.filters button").click();
    await until("the filtered list shows one run", async () => (await page.locator("table.runs tbody tr").count()) === 1);
    expect(await page.locator("table.runs tbody tr").getAttribute("data-run-id")).toBe(run.id);
  });

  it.skipIf(!!missing)("the tree turns green step by step while the worker runs a chain of gated steps", async () => {
    const run = await client.submit(chain(gate.si("step-a"), gate.si("step-b"), gate.si("step-c")), { name: "step-by-step" });
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    const paths = ["steps[0]", "steps[1]", "steps[2]"];
    // Waits for the page to show `expected`, failing with what it showed last.
    let seen: (string | undefined)[] = [];
    const shows = async (...expected: string[]) => {
      await until(`the steps show ${expected.join(", ")}`, async () => {
        seen = await Promise.all(paths.map((p) => stepState(page, p)));
        return JSON.stringify(seen) === JSON.stringify(expected);
      }).catch((err: Error) => {
        throw new Error(`${err.message}; last shown: ${seen.join(", ")}`);
      });
    };
    await shows("RUNNING", "PENDING", "PENDING");
    t.openGate("step-a");
    await shows("SUCCEEDED", "RUNNING", "PENDING");
    t.openGate("step-b");
    await shows("SUCCEEDED", "SUCCEEDED", "RUNNING");
    expect(await runStateBadge(page).getAttribute("data-state")).toBe("RUNNING");
    t.openGate("step-c");
    await shows("SUCCEEDED", "SUCCEEDED", "SUCCEEDED");
    await until("the run shows SUCCEEDED", async () => (await runStateBadge(page).getAttribute("data-state")) === "SUCCEEDED");
    // The page's picture came from the watch stream, and it is the server's.
    expect((await client.run(run.id).get()).state).toBe(RunState.SUCCEEDED);
  });

  it.skipIf(!!missing)("a failing step shows its error: type, message and stack", async () => {
    // A group whose middle branch fails; the others succeed (one through a child pipeline).
    const pipeline = inParallel([t.echo.send("fine"), t.failWith.send("ValueError", "bad input: expected a number, got 'x'", false), t.deep.send(2)]);
    const run = await client.submit(pipeline, { name: "failing-branch" });
    expect((await run.wait()).state).toBe(RunState.FAILED);
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    const failed = page.locator('li.step[data-step-path="steps[0].group.branches[1].steps[0]"]');
    await failed.waitFor({ timeout: 10_000 });
    expect(await failed.getAttribute("data-state")).toBe("FAILED");
    const error = failed.locator(":scope > .task-error");
    expect(await error.locator(".error-type").textContent()).toBe("ValueError");
    expect(await error.locator(".error-message").textContent()).toBe("bad input: expected a number, got 'x'");
    const stack = (await error.locator(".stack").textContent()) ?? "";
    expect(stack).toMatch(/^ValueError: bad input/);
    expect(stack).toMatch(/\n\s+at .*test-tasks\.ts/); // the worker's stack, down to the task's own file
    expect(await stepState(page, "steps[0].group.branches[0].steps[0]")).toBe("SUCCEEDED");
    expect(await runStateBadge(page).getAttribute("data-state")).toBe("FAILED");
    if (screenshots) await page.screenshot({ path: path.join(root, "docs", "dashboard-run.png"), fullPage: true });
  });

  it.skipIf(!!missing)("the cancel button cancels a running run: CANCELLED in the page and for the client", async () => {
    const run = await client.submit(gate.si("never-opened"), { name: "to-cancel" });
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    await until("the step runs", async () => (await stepState(page, "steps[0]")) === "RUNNING");
    // A finished run offers no cancel; a running one does, and pause beside it.
    expect(await page.locator('.actions button[name="pause"]').count()).toBe(1);
    await page.locator('.actions button[name="cancel"]').click();
    await until("the page shows the run CANCELLED", async () => (await runStateBadge(page).getAttribute("data-state")) === "CANCELLED");
    expect((await client.run(run.id).get()).state).toBe(RunState.CANCELLED);
    await until("the step shows CANCELLED", async () => (await stepState(page, "steps[0]")) === "CANCELLED");
    expect(await page.locator('.actions button[name="cancel"]').count()).toBe(0);
    expect(await page.locator('.actions button[name="resubmit"]').count()).toBe(1);
  });

  it.skipIf(!!missing)("pause and resume: the buttons follow the run's state", async () => {
    const run = await client.submit(chain(gate.si("pause-a"), gate.si("pause-b")), { name: "to-pause" });
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    await until("the first step runs", async () => (await stepState(page, "steps[0]")) === "RUNNING");
    await page.locator('.actions button[name="pause"]').click();
    await until("the page shows the run PAUSED", async () => (await runStateBadge(page).getAttribute("data-state")) === "PAUSED");
    expect((await client.run(run.id).get()).state).toBe(RunState.PAUSED);
    expect(await page.locator(".actions button").evaluateAll((bs) => bs.map((b) => b.getAttribute("name")))).toEqual(["resume", "cancel"]);
    // Paused: the running step finishes, the next one is not dispatched.
    t.openGate("pause-a");
    await until("the first step succeeded", async () => (await stepState(page, "steps[0]")) === "SUCCEEDED");
    await new Promise((r) => setTimeout(r, 300));
    expect(await stepState(page, "steps[1]")).not.toBe("RUNNING");
    await page.locator('.actions button[name="resume"]').click();
    await until("the second step runs once resumed", async () => (await stepState(page, "steps[1]")) === "RUNNING");
    expect(await runStateBadge(page).getAttribute("data-state")).toBe("RUNNING");
    t.openGate("pause-b");
    await until("the run succeeded", async () => (await runStateBadge(page).getAttribute("data-state")) === "SUCCEEDED");
  });

  it.skipIf(!!missing)("resubmit makes a new run of a finished one and the page moves to it", async () => {
    const run = await client.submit(t.echo.send("again"), { name: "to-resubmit" });
    await run.wait();
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    await page.locator('.actions button[name="resubmit"]').click();
    await until("the page shows another run", async () => {
      const shown = await page
        .locator(".run-header")
        .getAttribute("data-run-id")
        .catch(() => null);
      return shown !== null && shown !== run.id;
    });
    const newId = (await page.locator(".run-header").getAttribute("data-run-id"))!;
    expect(page.url()).toContain(`#/runs/${newId}`);
    const fresh = await client.run(newId).wait();
    expect([fresh.name, fresh.state]).toEqual(["to-resubmit", RunState.SUCCEEDED]);
    await until("the new run shows SUCCEEDED", async () => (await runStateBadge(page).getAttribute("data-state")) === "SUCCEEDED");
  });

  it.skipIf(!!missing)("the namespace field shows that namespace's runs only", async () => {
    const other = new PipewrightClient(ts.address, { namespace: "team-a" });
    try {
      const run = await other.submit(t.echo.send(1), { name: "in-team-a" });
      const page = await openPage(contexts);
      await page.goto(base);
      await page.locator("table.runs tbody tr").first().waitFor({ timeout: 10_000 });
      expect(await page.locator(`tr[data-run-id="${run.id}"]`).count()).toBe(0);
      await page.locator('.connection input[name="namespace"]').fill("team-a");
      await page.locator(".connection button").click();
      await until("only team-a's run is listed", async () => {
        const ids = await page.locator("table.runs tbody tr").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-run-id")));
        return ids.length === 1 && ids[0] === run.id;
      });
    } finally {
      other.close();
    }
  });

  it.skipIf(!!missing)("child pipelines 100 deep: drawn 40 levels down, the rest counted", async () => {
    // deep(n) returns a child pipeline deep(n - 1) then add1: 100 levels, 201 task steps.
    const run = await client.submit(t.deep.send(100), { name: "deep-children" });
    expect((await run.wait()).state).toBe(RunState.SUCCEEDED);
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    const note = page.locator(".too-deep");
    await note.waitFor({ timeout: 10_000 });
    const drawn = await page.locator("li.step").count();
    // Every step is either drawn or counted in the note.
    expect(await note.textContent()).toBe(`… ${201 - drawn} more steps nested deeper than 40 levels: ${201 - drawn} SUCCEEDED`);
    expect(drawn).toBeGreaterThan(40);
  });

  it.skipIf(!!missing)(
    "a group of 10,000 branches renders collapsed with counts, and expands a window at a time without freezing the page",
    async () => {
      const run = await client.submit(inParallel(Array.from({ length: 10_000 }, (_, i) => t.echo.send(i))), { name: "fan-out-10k" });
      const page = await openPage(contexts);
      await page.goto(`${base}#/runs/${run.id}`);
      const summary = page.locator('li.step[data-step-path="steps[0]"] > .group-body > .group-summary');
      await summary.waitFor({ timeout: 20_000 });
      // Live: the counts move to 10,000 succeeded as the worker goes through the branches.
      let counts = "";
      await until(
        "the group counts 10,000 branches succeeded",
        async () => {
          counts = (await summary.textContent()) ?? "";
          return (await summary.locator('[data-count-state="SUCCEEDED"] .n').textContent()) === "10,000";
        },
        60_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the group showed: ${counts}`);
      });
      expect(await summary.locator(".expand").textContent()).toContain("10,000 branches");
      expect(await page.locator("li.branch").count()).toBe(0); // collapsed: no branch in the DOM

      const started = Date.now();
      await summary.locator(".expand").click();
      await until("the first 100 branches are shown", async () => (await page.locator("li.branch").count()) === 100, 5_000);
      const expandMs = Date.now() - started;
      expect(expandMs).toBeLessThan(5_000);
      expect(await page.locator("li.branch").last().getAttribute("data-branch")).toBe("99");
      await page.locator("button.show-more").click();
      await until("100 more branches are shown", async () => (await page.locator("li.branch").count()) === 200, 5_000);
      // Still responsive: a round trip into the page's event loop is quick.
      const ping = Date.now();
      await page.evaluate(() => 1);
      expect(Date.now() - ping).toBeLessThan(1_000);
      console.log(`dashboard.test.ts: 10,000-branch group: expand showed 100 branches in ${expandMs} ms`);
    },
    120_000,
  );

  it.skipIf(!!missing)("the counts per state are the server's, and a count filters the list", async () => {
    await client.submit(gate.si("counts-running"), { name: "still-running" });
    const page = await openPage(contexts);
    await page.goto(base);
    const expected: Record<string, number> = {};
    for (const state of [RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]) {
      const { runs } = await client.rpc.listRuns({ states: [state], pageSize: 1000 });
      expected[RunState[state]] = runs.length;
    }
    const shown = async () => {
      const out: Record<string, number> = {};
      for (const name of Object.keys(expected)) {
        out[name] = Number(((await page.locator(`.state-counts [data-count-state="${name}"] .n`).textContent()) ?? "").replace(/,/g, ""));
      }
      return out;
    };
    await until("the counts match ListRuns", async () => JSON.stringify(await shown()) === JSON.stringify(expected));
    expect(expected.FAILED).toBeGreaterThan(0);
    expect(expected.RUNNING).toBeGreaterThan(0);
    await page.locator('.state-counts [data-count-state="FAILED"]').click();
    await until(
      "the list shows the failed runs only",
      async () =>
        (await page.locator("table.runs tbody tr").count()) === expected.FAILED &&
        (await page.locator('table.runs tbody .badge[data-state="FAILED"]').count()) === expected.FAILED,
    );
    await page.locator('.state-counts [data-count-state="FAILED"]').click(); // again: every state
    await until("the list shows every run", async () => (await page.locator("table.runs tbody tr").count()) > expected.FAILED);
    if (screenshots) await page.screenshot({ path: path.join(root, "docs", "dashboard-runs.png") });
    t.openGate("counts-running");
  });

  it.skipIf(!!missing)("pages through runs with ListRuns' next_page_token, forward and back", async () => {
    const handles = await client.submitMany(
      Array.from({ length: 55 }, (_, i) => t.echo.send(i)),
      { name: "paged" },
    );
    await client.waitAll(handles.map((h) => h.id));
    const page = await openPage(contexts);
    await page.goto(base);
    await page.locator('form.filters input[name="name"]').fill("paged");
    await page.locator("form.filters button").click();
    const rows = page.locator("table.runs tbody tr");
    const ids = async () => rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-run-id")));
    await until("the first page holds 50 runs", async () => (await rows.count()) === 50);
    const first = await ids();
    await page.locator('.pager button[name="next"]').click();
    await until("the second page holds the other 5", async () => (await rows.count()) === 5);
    const second = await ids();
    expect(new Set([...first, ...second])).toEqual(new Set(handles.map((h) => h.id))); // every run once, none twice
    expect(await page.locator('.pager button[name="next"]').isDisabled()).toBe(true);
    await page.locator('.pager button[name="previous"]').click();
    await until("back on the first page", async () => (await rows.count()) === 50);
    expect(await ids()).toEqual(first);
  });

  it.skipIf(!!missing)("a run with a delayed start shows SCHEDULED with its start, is counted and filtered as scheduled, then runs", async () => {
    const run = await client.submit(t.echo.send("later"), { name: "scheduled-run", startDelayMs: 2500 });
    const startsAt = new Date(Number((await run.get()).startTime!.seconds) * 1000).toISOString().slice(0, 19);
    const page = await openPage(contexts);
    await page.goto(base);
    const row = page.locator(`table.runs tbody tr[data-run-id="${run.id}"]`);
    await until("the run is listed as scheduled", async () => (await row.locator('.badge[data-state="SCHEDULED"]').count()) === 1);
    expect(await row.locator(".badge").getAttribute("title")).toContain(startsAt);
    const count = page.locator('.state-counts [data-count-state="SCHEDULED"]');
    await until("the scheduled count says 1", async () => ((await count.locator(".n").textContent()) ?? "") === "1");
    await count.click();
    await until("the list shows the scheduled run only", async () => {
      const ids = await page.locator("table.runs tbody tr").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-run-id")));
      return ids.length === 1 && ids[0] === run.id;
    });
    expect(await run.result(10_000)).toEqual(["later"]);
    await until("once started and done, it shows its state", async () => {
      await page.goto(base);
      return (await page.locator(`table.runs tbody tr[data-run-id="${run.id}"] .badge[data-state="SUCCEEDED"]`).count()) === 1;
    });
  });
  it.skipIf(!!missing)("a waiting step shows what it waits for and until when; a signal ends it and the page follows", async () => {
    const run = await client.submit(waitForSignal("approve", { timeoutMs: 3600_000 }).continueWith(t.echo), { name: "waiting-run" });
    const page = await openPage(contexts);
    await page.goto(`${base}#/runs/${run.id}`);
    const wait = page.locator('li.step[data-step-path="steps[0]"]');
    await until("the wait shows WAITING", async () => (await stepState(page, "steps[0]")) === "WAITING");
    expect(await wait.locator(".label").first().textContent()).toBe("signal approve");
    expect(await wait.locator(".wake-time").first().textContent()).toMatch(/^until \d{4}-\d{2}-\d{2}/);
    await run.signal("approve", "yes");
    await until("the wait shows SUCCEEDED", async () => (await stepState(page, "steps[0]")) === "SUCCEEDED");
    expect(await wait.locator(".wake-time").count()).toBe(0);
    expect(await run.result(10_000)).toEqual(["yes"]);
  });
});

describe(`the dashboard with tokens on${skipNote}`, () => {
  let ts: TestServer;
  let admin: PipewrightClient;
  let base: string;
  const contexts: BrowserContext[] = [];
  const tokens = {
    all: createToken("all", ["submit", "read", "control", "admin"]),
    read: createToken("reader", ["read"]),
    worker: createToken("worker", ["worker"]),
  };

  beforeAll(async () => {
    if (missing) return;
    const tokensFile = writeTokensFile(tokens);
    ts = await startTestServer({ tokensFile, dashboardAddress: "127.0.0.1:0" });
    await ts.worker({ tasks: t.testTasks, slots: 2, token: tokens.worker.secret });
    admin = new PipewrightClient(ts.address, { token: tokens.all.secret });
    base = `http://${ts.server.dashboardAddress}/`;
  });
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    admin?.close();
    t.resetGates();
    await ts?.stop();
  });

  it.skipIf(!!missing)("without a token the page says a token is needed; with a read token it lists runs", async () => {
    const run = await admin.submit(gate.si("tokens-list"), { name: "behind-tokens" });
    const page = await openPage(contexts);
    await page.goto(base);
    const alert = page.locator(".runs-page [role=alert]").first();
    await alert.waitFor({ timeout: 10_000 });
    expect(await alert.textContent()).toMatch(/^Token needed/);
    expect(await page.locator("table.runs tbody tr").count()).toBe(0);

    await page.locator('.connection input[name="token"]').fill(tokens.read.secret);
    await page.locator(".connection button").click();
    await page.locator(`tr[data-run-id="${run.id}"]`).waitFor({ timeout: 10_000 });
    // The list and the counts are two calls: each drops its "token needed" when it answers.
    await until("no error is shown", async () => (await page.locator(".runs-page [role=alert]").count()) === 0);
    // Kept for the tab (sessionStorage): a reload still has it.
    await page.reload();
    await page.locator(`tr[data-run-id="${run.id}"]`).waitFor({ timeout: 10_000 });
    t.openGate("tokens-list");
  });

  it.skipIf(!!missing)("a read-only token cannot cancel: the server's refusal is shown and the run goes on", async () => {
    const run = await admin.submit(gate.si("tokens-cancel"), { name: "not-cancellable-here" });
    const page = await openPage(contexts);
    await page.goto(base);
    await page.locator('.connection input[name="token"]').fill(tokens.read.secret);
    await page.locator(".connection button").click();
    await page.goto(`${base}#/runs/${run.id}`);
    await until("the step runs", async () => (await stepState(page, "steps[0]")) === "RUNNING");
    await page.locator('.actions button[name="cancel"]').click();
    const alert = page.locator(".actions [role=alert]");
    await alert.waitFor({ timeout: 10_000 });
    const text = (await alert.textContent()) ?? "";
    expect(text).toContain("control"); // the server names the scope it wanted
    expect(text).toContain("permission_denied");
    expect((await admin.run(run.id).get()).state).toBe(RunState.RUNNING);
    expect(await runStateBadge(page).getAttribute("data-state")).toBe("RUNNING");

    // The workers view needs the admin scope, and says so.
    await page.goto(`${base}#/workers`);
    const refusal = page.locator(".workers-page [role=alert]").first();
    await refusal.waitFor({ timeout: 10_000 });
    expect(await refusal.textContent()).toContain("needs a token with the admin scope");
    t.openGate("tokens-cancel");
  });

  it.skipIf(!!missing)("an admin token sees the connected worker", async () => {
    const page = await openPage(contexts);
    await page.goto(base);
    await page.locator('.connection input[name="token"]').fill(tokens.all.secret);
    await page.locator(".connection button").click();
    await page.goto(`${base}#/workers`);
    const row = page.locator("table.workers tbody tr").first();
    await row.waitFor({ timeout: 10_000 });
    const cells = await row.locator("td").allTextContents();
    expect(cells[2]).toContain("gate"); // the task names it serves
    expect(cells[4]).toMatch(/^\d+ \/ 2$/); // slots used / total
    expect(await row.locator(".badge").getAttribute("data-state")).toBe("ACTIVE");
  });
});
