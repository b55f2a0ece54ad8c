// What the browser tests of the dashboard share: chromium (Debian's, driven by playwright-core)
// or the reason it is missing, the page built from its sources, and fresh pages whose uncaught
// errors and CSP refusals fail the test that opened them.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const root = path.resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.PIPEWRIGHT_CHROMIUM ?? "/usr/bin/chromium";
/** Why the browser tests cannot run here ("" when they can). */
export const missingChromium = existsSync(CHROMIUM) ? "" : `no chromium at ${CHROMIUM} (apt-get install chromium, or set PIPEWRIGHT_CHROMIUM)`;

/** Builds dashboard/dist/ when it is missing or older than a source (npm test builds it first, so this is for `vitest run test/dashboard`). */
export function ensureBuilt(): void {
  const dir = path.join(root, "dashboard");
  const built = path.join(dir, "dist", "index.html");
  const newest = (p: string): number => (statSync(p).isDirectory() ? Math.max(0, ...readdirSync(p).map((e) => newest(path.join(p, e)))) : statSync(p).mtimeMs);
  const sources = Math.max(newest(path.join(dir, "src")), newest(path.join(dir, "index.html")), newest(path.join(dir, "vite.config.ts")));
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  execFileSync(path.join(root, "node_modules", ".bin", "vite"), ["build", "dashboard", "--logLevel", "warn"], { cwd: root, stdio: "inherit" });
}

export async function launchBrowser(): Promise<Browser> {
  ensureBuilt();
  return chromium.launch({
    executablePath: CHROMIUM,
    // --no-sandbox: tests run as root here. The rest keeps chromium from reaching out (updates, sync, QUIC probes).
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A fresh page (its own sessionStorage); its uncaught errors and CSP refusals go to `errors`. */
export async function openPage(browser: Browser, contexts: BrowserContext[], errors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (err) => errors.push(err.message));
  // The server sends a strict Content-Security-Policy: anything of the page it blocks is a bug.
  // (Other console errors are expected: Chromium logs every 401 and 403 the tests provoke.)
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  return page;
}

/** The calls the page made to a gateway method, counted as they leave the page. */
export function countCalls(page: Page, method: string): { count: number } {
  const counter = { count: 0 };
  page.on("request", (r) => {
    if (r.url().endsWith(`/api/${method}`)) counter.count++;
  });
  return counter;
}
