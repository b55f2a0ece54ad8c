// The project's one test command (`npm test`, and what .ci/run runs).
//
// Why it exists: CI reads the closing line of a run to know how many tests passed and failed,
// and vitest prints no such line of its own. This script runs every check in order (proto lint,
// proto breaking changes, generated-code freshness, typecheck, dashboard build, vitest), keeps going after a
// failed stage so one run shows everything, and ends with exactly one line `N passed, N failed`.
// A failed stage counts as one failed test. Exit code 0 only when nothing failed and at least
// one test ran. Extra arguments go to vitest: `npm test -- test/core`.
//
// Plain Node ESM on purpose: it must run with bare `node`, before anything is compiled.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const runStarted = Date.now();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
const resultsDir = path.join(root, ".test-results");
const reportFile = path.join(resultsDir, "vitest.json");

/** Runs a command from the repo root with live output; resolves to its exit code (127 if it could not start). */
function run(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: "inherit" });
    child.on("error", (err) => {
      console.error(`cannot run ${command}: ${err.message}`);
      resolve(127);
    });
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Every file under dir, as paths relative to dir ([] if dir is missing). */
function listFiles(dir, prefix = "") {
  let entries;
  try {
    entries = readdirSync(path.join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const rel = path.join(prefix, e.name);
    return e.isDirectory() ? listFiles(dir, rel) : [rel];
  });
}

/** Stage c: regenerate into a temporary folder and compare byte for byte with the committed code. */
async function checkGenerated() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "pipewright-gen-"));
  try {
    const outs = [];
    let template = readFileSync(path.join(root, "buf.gen.yaml"), "utf8").replace(/^(\s*(?:-\s+)?out:\s*)(.+?)\s*$/gm, (_, key, value) => {
      const out = value.replace(/^["']|["']$/g, "");
      outs.push(out);
      return `${key}${JSON.stringify(path.join(tmp, "out", out))}`;
    });
    template = /^clean:/m.test(template) ? template.replace(/^clean:.*$/m, "clean: true") : `${template.trimEnd()}\nclean: true\n`;
    const templateFile = path.join(tmp, "buf.gen.yaml");
    writeFileSync(templateFile, template);
    if ((await run(bin("buf"), ["generate", "--template", templateFile])) !== 0) return false;

    const differences = [];
    for (const out of new Set(outs)) {
      const committed = path.join(root, out);
      const fresh = path.join(tmp, "out", out);
      const committedFiles = new Set(listFiles(committed));
      const freshFiles = new Set(listFiles(fresh));
      for (const f of freshFiles) {
        if (!committedFiles.has(f)) differences.push(`missing: ${path.join(out, f)}`);
        else if (!readFileSync(path.join(fresh, f)).equals(readFileSync(path.join(committed, f)))) differences.push(`changed: ${path.join(out, f)}`);
      }
      for (const f of committedFiles) if (!freshFiles.has(f)) differences.push(`extra:   ${path.join(out, f)}`);
    }
    if (differences.length === 0) return true;
    console.error(differences.map((d) => `  ${d}`).join("\n"));
    console.error("Generated code is out of date with the .proto files: run `npm run proto:generate` and commit the result.");
    return false;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const stages = [
  ["buf lint", async () => (await run(bin("buf"), ["lint"])) === 0],
  ["buf breaking --against proto/baseline.binpb", async () => (await run(bin("buf"), ["breaking", "--against", "proto/baseline.binpb"])) === 0],
  ["generated code is fresh (buf generate vs proto/gen)", checkGenerated],
  ["tsc --noEmit -p tsconfig.json", async () => (await run(bin("tsc"), ["--noEmit", "-p", "tsconfig.json"])) === 0],
  // The dashboard runs in the browser (DOM types, no Node types): its own tsconfig.
  ["tsc --noEmit -p dashboard/tsconfig.json", async () => (await run(bin("tsc"), ["--noEmit", "-p", "dashboard/tsconfig.json"])) === 0],
  // Builds dashboard/dist/ (not committed), which the server serves on --dashboard-address and
  // test/dashboard/ drives in a browser: before the tests, so they see the sources of this tree.
  ["dashboard build (npm run dashboard:build)", async () => (await run("npm", ["run", "--silent", "dashboard:build"])) === 0],
  // The rules and the folders cruised are in .dependency-cruiser.cjs and the lint:deps script;
  // each violation is printed with the rule's reason, and depcruise exits non-zero on any.
  ["import boundaries (npm run lint:deps)", async () => (await run("npm", ["run", "--silent", "lint:deps"])) === 0],
  // Style is the formatter's (.prettierrc.json), not a matter for review: `npm run format` fixes it.
  ["formatting (npm run format:check)", async () => (await run("npm", ["run", "--silent", "format:check"])) === 0],
];

const failedStages = [];
for (const [i, [name, check]] of stages.entries()) {
  console.log(`\n=== [${i + 1}/${stages.length + 1}] ${name}`);
  const started = Date.now();
  const ok = await check().catch((err) => {
    console.error(err);
    return false;
  });
  console.log(`--- ${ok ? "ok" : "FAILED"}: ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  if (!ok) failedStages.push(name);
}

console.log(`\n=== [${stages.length + 1}/${stages.length + 1}] ${["vitest run", ...process.argv.slice(2)].join(" ")}`);
mkdirSync(resultsDir, { recursive: true });
rmSync(reportFile, { force: true }); // never read a stale report from an earlier run
const vitestCode = await run(bin("vitest"), [
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile=${path.relative(root, reportFile)}`,
  ...process.argv.slice(2),
]);

let report;
try {
  report = JSON.parse(readFileSync(reportFile, "utf8"));
} catch {
  report = undefined;
}

console.log(`\n=== summary (whole run took ${((Date.now() - runStarted) / 1000).toFixed(1)}s)`);
let passed = 0;
let ran = 0; // tests that passed or failed (not skipped)
let failed = failedStages.length;
for (const name of failedStages) console.log(`failed stage: ${name}`);
if (!report) {
  console.log(`vitest wrote no report (exit code ${vitestCode}): counted as one failure`);
  failed += 1;
} else {
  const tests = report.testResults.flatMap((file) => file.assertionResults.map((t) => ({ ...t, file: path.relative(root, file.name) })));
  passed = tests.filter((t) => t.status === "passed").length;
  const failedTests = tests.filter((t) => t.status === "failed").length;
  failed += failedTests;
  ran = passed + failedTests;
  // A file that fails before its tests run (import error, failing beforeAll) has no failed test of its own.
  const brokenFiles = report.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((t) => t.status === "failed"));
  for (const f of brokenFiles) console.log(`failed test file: ${path.relative(root, f.name)} ${f.message ?? ""}`.trimEnd());
  failed += brokenFiles.length;
  // vitest can fail with every test green (unhandled error, global teardown): that is a failure too.
  if (vitestCode !== 0 && failed === failedStages.length) {
    console.log(`vitest exited with code ${vitestCode} although no test failed: counted as one failure`);
    failed += 1;
  }
  const skipped = tests.filter((t) => t.status !== "passed" && t.status !== "failed");
  console.log(`${skipped.length} skipped${skipped.length ? ":" : ""}`);
  // vitest's JSON report has no skip reason (the note of ctx.skip(note) is dropped), so names only.
  for (const t of skipped) console.log(`  - [${t.status}] ${t.file} > ${t.fullName}`);
}
if (ran === 0) console.log("no test ran: the run fails");
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
