// The dispatcher's files depend one way: no import circle among them (each
// part can be read, and changed, knowing only what it imports), and of the
// engine they see only engine/ports.ts.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const folder = path.resolve(import.meta.dirname, "../../server/dispatch");
const files = readdirSync(folder).filter((f) => f.endsWith(".ts"));

/** The relative imports of a file (type-only ones too), as paths from server/dispatch. */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(folder, file), "utf8");
  return [...text.matchAll(/^import\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)].map((m) => path.normalize(m[1]).replace(/\.js$/, ".ts"));
}

describe("server/dispatch imports", () => {
  it("has no import circle", () => {
    const graph = new Map(files.map((f) => [f, importsOf(f).filter((i) => files.includes(i))]));
    const circles: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (f: string, trail: string[]) => {
      if (state.get(f) === "done") return;
      if (state.get(f) === "visiting") return void circles.push([...trail.slice(trail.indexOf(f)), f].join(" -> "));
      state.set(f, "visiting");
      for (const next of graph.get(f)!) visit(next, [...trail, f]);
      state.set(f, "done");
    };
    for (const f of files) visit(f, []);
    expect(graph.get("dispatcher.ts")!.length).toBeGreaterThan(3); // the parser sees the imports
    expect(circles).toEqual([]);
  });

  it("uses the engine only through engine/ports.ts", () => {
    const intoEngine = files.flatMap((f) =>
      importsOf(f)
        .filter((i) => i.startsWith("../engine/") && i !== "../engine/ports.ts")
        .map((i) => `${f}: ${i}`),
    );
    expect(intoEngine).toEqual([]);
  });
});
