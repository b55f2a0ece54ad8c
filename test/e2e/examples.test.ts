// `npm run examples -- --json` as a user runs it (its own process, against a
// database of its own), and every example documented in docs/examples.md.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { examples } from "../../examples/pipelines.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const exec = promisify(execFile);
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

describe("npm run examples -- --json", () => {
  it("prints one JSON line per example with the values the reference implies", async () => {
    const { stdout } = await exec(process.execPath, ["--import", "tsx", "examples/run-examples.ts", "--json"], {
      env: { ...process.env, DATABASE_URL: db.url },
      timeout: 120_000,
    });
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toEqual(examples.map((e) => ({ name: e.name, result: e.expected })));
    expect(Object.fromEntries(lines.map((l) => [l.name, l.result]))).toMatchObject({
      continuation: 3,
      "fan-in-average": 13,
      nested: 9.5,
      state: 15,
      composition: 5,
      conditional: 1,
      recursion: 100,
      "with-initial": 100010000,
    });
  });

  it("every example has a section with its code in docs/examples.md", async () => {
    const doc = await readFile("docs/examples.md", "utf8");
    for (const e of examples) expect(doc, e.name).toContain(`## ${e.name}\n`);
  });
});
