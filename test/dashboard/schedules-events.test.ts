// The dashboard's schedules, events and signal views in a real browser (chromium through
// playwright-core) against a real server, PostgreSQL and worker: schedules made with the
// client, fired by the server's own scheduler, paused, resumed and fired from the page;
// triggers and events; a waiting run resumed by a signal sent from its page.
//
// Where chromium is missing the tests report themselves skipped with the reason.

import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PipewrightClient } from "../../client/client.js";
import { waitForSignal } from "../../client/pipeline-builder.js";
import { RunState } from "../../proto/gen/pipewright/v1/run_pb.js";
import { createToken } from "../../server/api/tokens.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { writeTokensFile } from "../support/tokens-file.js";
import * as t from "../support/test-tasks.js";
import { until } from "../support/until.js";
import { countCalls, launchBrowser, missingChromium as missing, openPage as open } from "./browser.js";

if (missing) console.log(`schedules-events.test.ts: the browser tests are skipped: ${missing}`);
const skipNote = missing ? ` [skipped: ${missing}]` : "";
/** A cron that never fires while a test runs (3 a.m. on 1 January). */
const FAR_CRON = "0 0 3 1 1 *";

let browser: Browser;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];
beforeAll(async () => {
  if (!missing) browser = await launchBrowser();
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
});
afterEach(() => {
  expect(pageErrors.splice(0), "uncaught errors in the page").toEqual([]);
});
const openPage = (): Promise<Page> => open(browser, contexts, pageErrors);

/** The schedule page's state badge (PAUSED or ACTIVE). */
const scheduleBadge = (page: Page) => page.locator(".schedule-header h1 .badge");

describe(`the dashboard's schedules, events and signals, against a real server and worker${skipNote}`, () => {
  let ts: TestServer;
  let client: PipewrightClient;
  let base: string;

  beforeAll(async () => {
    if (missing) return;
    ts = await startTestServer({ dashboardAddress: "127.0.0.1:0" });
    await ts.worker({ tasks: t.testTasks, slots: 8 });
    client = ts.client();
    base = `http://${ts.server.dashboardAddress}/`;
  });
  afterAll(async () => {
    t.resetGates();
    await ts?.stop();
  });

  it.skipIf(!!missing)("a schedule made by a client is listed with its cron, zone, overlap, state and next fire; its id opens its page", async () => {
    const made = await client.schedules.create({ id: "listed-nightly", cron: FAR_CRON, timeZone: "Europe/Berlin", overlap: "allow", pipeline: t.echo.send(1) });
    const page = await openPage();
    await page.goto(`${base}#/schedules`);
    const row = page.locator('table.schedules tr[data-schedule-id="listed-nightly"]');
    await row.waitFor({ timeout: 10_000 });
    const cells = await row.locator("td").allTextContents();
    expect(cells.slice(0, 4)).toEqual(["listed-nightly", `${FAR_CRON} (Europe/Berlin)`, "allow", "ACTIVE"]);
    expect(cells[4]).toBe(localTime(made.nextFireAt!));
    expect(cells[5]).toBe(""); // never fired
    expect(await page.locator('nav a[href="#/schedules"]').getAttribute("class")).toBe("current");
    await row.locator("a").click();
    await page.locator(".schedule-header").waitFor({ timeout: 10_000 });
    expect(page.url()).toContain("#/schedules/listed-nightly");
    expect(await page.locator(".schedule-header dd.cron").textContent()).toBe(`${FAR_CRON} (Europe/Berlin)`);
    expect(await page.locator(".schedule-page .empty").textContent()).toBe("It has not fired yet.");
  });

  it.skipIf(!!missing)("a schedule firing every second: its page lists the fires, each linking to the run it started", async () => {
    await client.schedules.create({ id: "every-second", cron: "* * * * * *", pipeline: t.echo.send("tick"), overlap: "allow" });
    try {
      const page = await openPage();
      await page.goto(`${base}#/schedules/every-second`);
      const links = page.locator("table.fires tbody tr a.run-link");
      await until("the page lists two fires with their runs", async () => (await links.count()) >= 2, 15_000);
      await client.schedules.pause("every-second");
      // Each link is a run the server says the schedule started.
      const { fires } = await client.schedules.fires("every-second");
      const started = new Set(fires.map((f) => f.runId).filter(Boolean));
      const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute("href")));
      for (const href of hrefs) expect(started).toContain(href!.replace("#/runs/", ""));
      expect(await page.locator("table.fires tbody tr .badge").first().getAttribute("data-state")).toBe("STARTED");
      expect(await page.locator(".schedule-header dd.last-fire").textContent()).not.toBe("never");
      // The link opens the run: started by the cron, it ran the schedule's pipeline.
      const runId = hrefs[hrefs.length - 1]!.replace("#/runs/", "");
      await links.last().click();
      await until("the run's page shows it SUCCEEDED", async () => {
        const header = page.locator(".run-header");
        return (
          (await header.count()) === 1 &&
          (await header.getAttribute("data-run-id")) === runId &&
          (await header.locator(".badge").getAttribute("data-state")) === "SUCCEEDED"
        );
      });
      expect(await client.run(runId).result(10_000)).toEqual(["tick"]);
    } finally {
      await client.schedules.pause("every-second");
    }
  });

  it.skipIf(!!missing)("the Pause and Resume buttons pause and resume the schedule, and its badge follows", async () => {
    await client.schedules.create({ id: "pausable", cron: FAR_CRON, pipeline: t.echo.send(1) });
    const page = await openPage();
    await page.goto(`${base}#/schedules/pausable`);
    await until(
      "the schedule shows ACTIVE",
      async () =>
        (await scheduleBadge(page)
          .getAttribute("data-state")
          .catch(() => null)) === "ACTIVE",
    );
    await page.locator('.actions button[name="pause"]').click();
    await until("the page shows it PAUSED", async () => (await scheduleBadge(page).getAttribute("data-state")) === "PAUSED");
    expect((await client.schedules.get("pausable")).paused).toBe(true);
    expect(await page.locator(".schedule-header dd.next-fire").textContent()).toBe("(paused)");
    expect(await page.locator('.actions button[name="pause"]').count()).toBe(0);
    await page.locator('.actions button[name="resume"]').click();
    await until("the page shows it ACTIVE again", async () => (await scheduleBadge(page).getAttribute("data-state")) === "ACTIVE");
    const resumed = await client.schedules.get("pausable");
    expect(resumed.paused).toBe(false);
    expect(await page.locator(".schedule-header dd.next-fire").textContent()).toBe(localTime(resumed.nextFireAt!));
    // The list shows the same.
    await page.goto(`${base}#/schedules`);
    const badge = page.locator('table.schedules tr[data-schedule-id="pausable"] .badge');
    await until("the list shows it ACTIVE", async () => (await badge.count()) === 1 && (await badge.getAttribute("data-state")) === "ACTIVE");
  });

  it.skipIf(!!missing)("Trigger now fires a schedule that would not fire for months: a fire with its run appears", async () => {
    await client.schedules.create({ id: "fire-now", cron: FAR_CRON, pipeline: t.echo.send("now") });
    const page = await openPage();
    await page.goto(`${base}#/schedules/fire-now`);
    await page.locator(".schedule-page .empty").waitFor({ timeout: 10_000 });
    await page.locator('.actions button[name="trigger"]').click();
    const row = page.locator("table.fires tbody tr");
    await until("the page lists the fire", async () => (await row.count()) === 1);
    const { fires } = await client.schedules.fires("fire-now");
    expect(fires.map((f) => [f.outcome, f.triggered])).toEqual([["started", true]]);
    expect(await row.locator("a.run-link").getAttribute("href")).toBe(`#/runs/${fires[0].runId}`);
    expect((await row.locator("td").allTextContents())[3]).toBe("trigger now");
    expect(await page.locator(".actions .fired a").getAttribute("href")).toBe(`#/runs/${fires[0].runId}`);
    expect(await client.run(fires[0].runId!).result(10_000)).toEqual(["now"]);
  });

  it.skipIf(!!missing)("the events page lists a trigger with its filter, and a published event with the run it started", async () => {
    await client.triggers.create({ id: "ship-eu", eventName: "order.shipped", filter: { region: "eu" }, pipeline: t.echo.send("shipped") });
    const published = await client.events.publish("order.shipped", { region: "eu", id: 7 }, { eventId: "dash-evt-1" });
    expect(published.runs.map((r) => r.triggerId)).toEqual(["ship-eu"]);
    const page = await openPage();
    await page.goto(`${base}#/events`);
    const trigger = page.locator('table.triggers tr[data-trigger-id="ship-eu"]');
    await trigger.waitFor({ timeout: 10_000 });
    expect((await trigger.locator("td").allTextContents()).slice(0, 4)).toEqual(["ship-eu", "order.shipped", 'region = "eu"', "ACTIVE"]);
    const event = page.locator('table.events tr[data-event-id="dash-evt-1"]');
    await event.waitFor({ timeout: 10_000 });
    expect((await event.locator("td").allTextContents())[1]).toBe("order.shipped");
    const link = event.locator('.triggered-run[data-trigger-id="ship-eu"] a');
    expect(await link.getAttribute("href")).toBe(`#/runs/${published.runs[0].runId}`);
    await link.click();
    await until(
      "the run's page opens",
      async () =>
        (await page
          .locator(".run-header")
          .getAttribute("data-run-id")
          .catch(() => null)) === published.runs[0].runId,
    );
    expect(await client.run(published.runs[0].runId).result(10_000)).toEqual([{ region: "eu", id: 7 }, "shipped"]);
  });

  it.skipIf(!!missing)("a run waiting for a signal is resumed from its page: bad JSON is refused before any call, good JSON is the step's result", async () => {
    const run = await client.submit(waitForSignal("approve", { timeoutMs: 3600_000 }).continueWith(t.echo), { name: "needs-approval" });
    const page = await openPage();
    const signalCalls = countCalls(page, "pipewright.v1.RunService/SignalRun");
    await page.goto(`${base}#/runs/${run.id}`);
    const form = page.locator("form.signal-form");
    await form.waitFor({ timeout: 10_000 });
    expect(await form.locator('input[name="signal-name"]').inputValue()).toBe("approve");
    await form.locator('textarea[name="signal-payload"]').fill("{approved: yes");
    await form.locator('button[name="send-signal"]').click();
    const alert = form.locator("[role=alert]");
    await alert.waitFor({ timeout: 5_000 });
    expect(await alert.textContent()).toMatch(/^The payload is not JSON/);
    expect(signalCalls.count).toBe(0);
    expect((await run.get()).state).toBe(RunState.RUNNING);

    await form.locator('textarea[name="signal-payload"]').fill('{"approved": true, "by": "ana"}');
    await form.locator('button[name="send-signal"]').click();
    const answer = page.locator(".signal-answer");
    await answer.waitFor({ timeout: 10_000 });
    expect(await answer.getAttribute("data-delivery")).toBe("DELIVERED");
    expect(signalCalls.count).toBe(1);
    expect(await run.result(10_000)).toEqual([{ approved: true, by: "ana" }]);
    await until("the page shows the run SUCCEEDED", async () => (await page.locator(".run-header h1 .badge").getAttribute("data-state")) === "SUCCEEDED");
    expect(await page.locator("form.signal-form").count()).toBe(0); // nothing waits any more
  });
});

describe(`the schedule actions with tokens on${skipNote}`, () => {
  let ts: TestServer;
  let admin: PipewrightClient;
  let base: string;
  const tokens = { all: createToken("all", ["submit", "read", "control"]), read: createToken("reader", ["read"]), worker: createToken("worker", ["worker"]) };

  beforeAll(async () => {
    if (missing) return;
    const tokensFile = writeTokensFile(tokens);
    ts = await startTestServer({ tokensFile, dashboardAddress: "127.0.0.1:0" });
    admin = new PipewrightClient(ts.address, { token: tokens.all.secret });
    base = `http://${ts.server.dashboardAddress}/`;
  });
  afterAll(async () => {
    admin?.close();
    await ts?.stop();
  });

  it.skipIf(!!missing)("a read-only token sees the schedule; pausing and firing are refused in plain words, and nothing changes", async () => {
    await admin.schedules.create({ id: "read-only-view", cron: FAR_CRON, pipeline: t.echo.send(1) });
    const page = await openPage();
    await page.goto(base);
    await page.locator('.connection input[name="token"]').fill(tokens.read.secret);
    await page.locator(".connection button").click();
    await page.goto(`${base}#/schedules/read-only-view`);
    await until(
      "the schedule shows ACTIVE",
      async () =>
        (await scheduleBadge(page)
          .getAttribute("data-state")
          .catch(() => null)) === "ACTIVE",
    );
    const alert = page.locator(".actions [role=alert]");
    await page.locator('.actions button[name="pause"]').click();
    await alert.waitFor({ timeout: 10_000 });
    expect(await alert.textContent()).toMatch(/^Pausing a schedule needs a token with the control scope\. The server said: .*control/);
    await page.locator('.actions button[name="trigger"]').click();
    await until("the refusal names the submit scope", async () =>
      /^Firing a schedule needs a token with the submit scope/.test((await alert.textContent()) ?? ""),
    );
    const after = await admin.schedules.get("read-only-view");
    expect(after.paused).toBe(false);
    expect((await admin.schedules.fires("read-only-view")).fires).toEqual([]);
    expect(await scheduleBadge(page).getAttribute("data-state")).toBe("ACTIVE");
  });
});

/** A time as the page shows it: local, to the second. */
function localTime(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
