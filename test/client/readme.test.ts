// The README stays true: its configuration table lists exactly the server's options.

import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { OPTIONS } from "../../server/config.js";

describe("README", () => {
  it("documents every server option, with its environment variable and default", async () => {
    const readme = await readFile("README.md", "utf8");
    const rows = readme.split("\n").filter((l) => l.startsWith("| `--"));
    expect(rows.map((r) => r.split("|")[1].trim().replaceAll("`", ""))).toEqual(OPTIONS.map((o) => o.flag));
    for (const o of OPTIONS) {
      const row = rows.find((r) => r.includes(`\`${o.flag}\``))!;
      expect(row).toContain(`\`${o.env}\``);
      if (o.default) expect(row).toContain(`\`${o.default}\``);
    }
  });

  it("shows the two commands", async () => {
    const readme = await readFile("README.md", "utf8");
    expect(readme).toContain("npm install && npm start");
    expect(readme).toContain("npm install && npm test");
  });
});
