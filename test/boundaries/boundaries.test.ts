// The import boundaries of .dependency-cruiser.cjs (run by `npm test` as `npm run lint:deps`):
// (a) the real tree keeps them, and (b) each rule can fire: a tiny fixture tree shaped like the
// repository, cruised with the same config file (one source of truth), breaks exactly that rule.
// A rule that could never fire (a misspelt path regex, a paths mapping that stopped resolving)
// would otherwise pass `npm test` forever without checking anything.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cruise, type ICruiseOptions, type ICruiseResult } from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "../..");
const PACKAGE_FOLDERS = ["proto", "client", "worker-sdk", "server", "dashboard"];

let config: ICruiseOptions;
beforeAll(async () => {
  config = await extractDepcruiseOptions(path.join(root, ".dependency-cruiser.cjs"));
});

/**
 * Cruises `baseDir` with the project's rules and options, as `npm run lint:deps` would there:
 * from that folder, because dependency-cruiser resolves the tsconfig `paths` of a tsconfig
 * without baseUrl from the working directory (see the config). The forks pool allows chdir.
 */
async function cruiseTree(baseDir: string, folders: string[]): Promise<ICruiseResult> {
  const cwd = process.cwd();
  process.chdir(baseDir);
  try {
    const result = await cruise(folders, { ...config, baseDir });
    // With no outputType, the output is the result object itself (not a report string).
    return result.output as ICruiseResult;
  } finally {
    process.chdir(cwd);
  }
}

/** "rule: from -> to" for each violation, to read in a failed expectation. */
function describeViolations(result: ICruiseResult): string[] {
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
}

describe("the real tree", () => {
  it("keeps every rule, with every @pipewright import resolved to its sources", async () => {
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
    // The script npm test runs cruises the same folders as this test.
    expect(pkg.scripts["lint:deps"]).toMatch(new RegExp(`--config \\.dependency-cruiser\\.cjs\\b.* ${PACKAGE_FOLDERS.join(" ")}$`));

    const result = await cruiseTree(root, PACKAGE_FOLDERS);
    expect(describeViolations(result)).toEqual([]);
    // Not vacuous: the package names resolve through tsconfig.json paths to the sources.
    const resolved = new Set(
      result.modules.flatMap((m) => m.dependencies.filter((d) => d.module.startsWith("@pipewright/")).map((d) => `${d.module} -> ${d.resolved}`)),
    );
    expect(resolved).toContain("@pipewright/protocol -> proto/index.ts");
    expect(resolved).toContain("@pipewright/client -> client/index.ts");
    expect(result.summary.totalCruised).toBeGreaterThan(80);
  });
});

/** A fixture tree: file path (relative to the tree) -> contents. */
type Tree = Record<string, string>;

const EMPTY = "export const x = 1;\n";

/** What every fixture has: the package entry points that tsconfig.json paths point to. */
const ENTRY_POINTS: Tree = {
  "proto/index.ts": EMPTY,
  "client/index.ts": EMPTY,
  "worker-sdk/index.ts": EMPTY,
  "worker-sdk/testing.ts": EMPTY,
  "server/index.ts": EMPTY,
  "dashboard/src/main.ts": EMPTY,
  // An npm package, so that "npm packages are allowed" is checked too.
  "node_modules/some-npm-package/package.json": JSON.stringify({ name: "some-npm-package", version: "1.0.0", main: "index.js" }),
  "node_modules/some-npm-package/index.js": "exports.x = 1;\n",
};

const cases: { rule: string; tree: Tree }[] = [
  {
    rule: "protocol-depends-on-nothing-of-ours",
    tree: { "proto/runtime/a.ts": `import { x } from "@pipewright/client";\nexport const a = x;\n` },
  },
  {
    rule: "core-is-pure",
    tree: {
      "server/core/a.ts": `import { x } from "../store/b.js";\nexport const a = x;\n`,
      "server/store/b.ts": EMPTY,
    },
  },
  {
    rule: "store-below-engine",
    tree: {
      "server/store/a.ts": `import { x } from "../engine/b.js";\nexport const a = x;\n`,
      "server/engine/b.ts": EMPTY,
    },
  },
  {
    rule: "dispatch-sees-engine-only-through-ports",
    tree: {
      // ports.ts is allowed; run-engine.ts is not.
      "server/dispatch/a.ts": `import { x } from "../engine/ports.js";\nimport { x as y } from "../engine/run-engine.js";\nexport const a = x + y;\n`,
      "server/engine/ports.ts": EMPTY,
      "server/engine/run-engine.ts": EMPTY,
    },
  },
  {
    rule: "schedule-uses-engine-front-door",
    tree: {
      // run-engine.ts is allowed; another engine file and the api are not.
      "server/schedule/a.ts": `import { x } from "../engine/run-engine.js";\nimport { x as y } from "../engine/batch.js";\nimport { x as z } from "../api/b.js";\nexport const a = x + y + z;\n`,
      "server/engine/run-engine.ts": EMPTY,
      "server/engine/batch.ts": EMPTY,
      "server/api/b.ts": EMPTY,
    },
  },
  {
    rule: "observe-is-a-leaf",
    tree: {
      "server/observe/a.ts": `import { x } from "../engine/b.js";\nexport const a = x;\n`,
      "server/engine/b.ts": EMPTY,
    },
  },
  {
    rule: "events-use-the-engine-front-door",
    tree: {
      // run-engine.ts is allowed; the api is not.
      "server/events/a.ts": `import { x } from "../engine/run-engine.js";\nimport { x as y } from "../api/b.js";\nexport const a = x + y;\n`,
      "server/engine/run-engine.ts": EMPTY,
      "server/api/b.ts": EMPTY,
    },
  },
  {
    rule: "client-depends-only-on-protocol",
    tree: { "client/a.ts": `import { x } from "@pipewright/worker";\nexport const a = x;\n` },
  },
  {
    rule: "worker-sdk-not-server",
    tree: { "worker-sdk/a.ts": `import { x } from "../server/index.js";\nexport const a = x;\n` },
  },
  {
    rule: "dashboard-depends-only-on-protocol",
    tree: { "dashboard/src/a.ts": `import { x } from "@pipewright/client";\nexport const a = x;\n` },
  },
  {
    rule: "dashboard-runs-in-the-browser",
    tree: { "dashboard/src/a.ts": `import { readFileSync } from "node:fs";\nexport const a = readFileSync;\n` },
  },
  {
    // Type-only on one side: type-only imports count.
    rule: "no-cycles",
    tree: {
      "server/api/a.ts": `import type { B } from "./b.js";\nexport type A = { b?: B };\nexport const a = 1;\n`,
      "server/api/b.ts": `import { a } from "./a.js";\nexport type B = number;\nexport const b = a;\n`,
    },
  },
  {
    rule: "no-unresolvable",
    tree: { "client/a.ts": `import { x } from "./missing.js";\nexport const a = x;\n` },
  },
];

/** Imports every rule allows: the control for the cases above (none of them may fire here). */
const ALLOWED: Tree = {
  "proto/runtime/a.ts": `import { readFileSync } from "node:fs";\nimport { x } from "some-npm-package";\nexport const a = [readFileSync, x];\n`,
  "server/core/a.ts": `import { x } from "@pipewright/protocol";\nimport { x as y } from "some-npm-package";\nimport type { B } from "./b.js";\nimport path from "node:path";\nexport const a: B = [x, y, path];\n`,
  "server/core/b.ts": `export type B = unknown[];\n`,
  "server/store/a.ts": `import { a } from "../core/a.js";\nexport const s = a;\n`,
  "server/engine/ports.ts": `import { s } from "../store/a.js";\nexport const p = s;\n`,
  "server/dispatch/a.ts": `import { p } from "../engine/ports.js";\nimport { a } from "../core/a.js";\nimport { o } from "../observe/a.js";\nexport const d = [p, a, o];\n`,
  "server/events/a.ts": `import { e } from "../engine/run-engine.js";\nimport type { I } from "../engine/items.js";\nimport { s } from "../store/a.js";\nimport { o } from "../observe/a.js";\nexport const v: I = [e, s, o];\n`,
  "server/engine/run-engine.ts": `export const e = 1;\n`,
  "server/engine/items.ts": `export type I = unknown[];\n`,
  "server/observe/a.ts": `import { x } from "@pipewright/protocol";\nimport { x as y } from "some-npm-package";\nimport { hrtime } from "node:process";\nexport const o = [x, y, hrtime];\n`,
  "server/schedule/a.ts": `import { e } from "../engine/run-engine.js";\nimport type { I } from "../engine/items.js";\nimport { s } from "../store/a.js";\nimport { a } from "../core/a.js";\nimport { o } from "../observe/a.js";\nexport const sc: I = [e, s, a, o];\n`,
  "client/a.ts": `import { x } from "@pipewright/protocol";\nimport { x as y } from "some-npm-package";\nexport const c = [x, y];\n`,
  "worker-sdk/a.ts": `import { x } from "@pipewright/client";\nimport { x as y } from "@pipewright/protocol";\nexport const w = [x, y];\n`,
  "dashboard/src/a.ts": `import { x } from "../../proto/index.js";\nimport { x as y } from "some-npm-package";\nexport const d = [x, y];\n`,
  "dashboard/vite.config.ts": `import { fileURLToPath } from "node:url";\nexport const v = fileURLToPath;\n`,
};

describe("each rule fires on a tree that breaks it, and only that rule", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(path.join(os.tmpdir(), "pipewright-boundaries-"));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** Writes ENTRY_POINTS + tree and the repository's paths mapping into a new folder; cruises it. */
  async function cruiseFixture(name: string, tree: Tree): Promise<ICruiseResult> {
    const dir = path.join(folder, name);
    const { paths } = JSON.parse(readFileSync(path.join(root, "tsconfig.json"), "utf8")).compilerOptions;
    const files: Tree = { ...ENTRY_POINTS, ...tree, "tsconfig.json": JSON.stringify({ compilerOptions: { paths } }) };
    for (const [file, contents] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), contents);
    }
    return cruiseTree(dir, PACKAGE_FOLDERS);
  }

  it("has one case per rule of the config", () => {
    const rules = (config.ruleSet?.forbidden ?? []).map((r) => r.name);
    expect(cases.map((c) => c.rule).sort()).toEqual([...rules].sort());
  });

  it("allows what the rules allow (the control)", async () => {
    const result = await cruiseFixture("allowed", ALLOWED);
    expect(describeViolations(result)).toEqual([]);
    expect(result.summary.totalCruised).toBeGreaterThanOrEqual(Object.keys(ALLOWED).length);
  });

  it.each(cases)("$rule", async ({ rule, tree }) => {
    const result = await cruiseFixture(rule, tree);
    const violations = describeViolations(result);
    expect(violations.length, violations.join("\n")).toBeGreaterThan(0);
    expect([...new Set(result.summary.violations.map((v) => v.rule.name))], violations.join("\n")).toEqual([rule]);
    expect(result.summary.error).toBe(violations.length);
  });
});
