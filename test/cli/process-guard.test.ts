// The server process's handler of unhandled rejections (server/cli/process-guard.ts),
// in a process of its own: a database connection error nobody waited for (the
// driver drops one when PostgreSQL dies during a reconnect) is logged and the
// process goes on; any other unhandled rejection is logged and ends it.

import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const guard = path.resolve(import.meta.dirname, "../../server/cli/process-guard.ts");
const logger = path.resolve(import.meta.dirname, "../../server/observe/logger.ts");

/** Runs a module that installs the guard, rejects `reason` unhandled, and says "alive" 200 ms later. */
function runGuarded(reason: string): Promise<{ code: number | null; lines: { level: string; msg: string; known_issue?: string }[]; out: string }> {
  const script = `
    import { guardProcess } from ${JSON.stringify(guard)};
    import { createLogger } from ${JSON.stringify(logger)};
    guardProcess(createLogger({ level: "info", format: "json", sink: process.stdout }));
    void Promise.reject(${reason});
    setTimeout(() => console.log("alive"), 200);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  return new Promise((resolve) =>
    child.on("exit", (code) =>
      resolve({
        code,
        out,
        lines: out
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l)),
      }),
    ),
  );
}

describe("the server process's unhandled rejections", () => {
  it("a lost-connection error of the database driver is logged at warn and the process goes on", async () => {
    const r = await runGuarded(`Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), { code: "CONNECTION_CLOSED" })`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("alive");
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatchObject({ level: "warn", known_issue: "porsager/postgres#1192" });
  });

  it("a PostgreSQL shutdown error (57P01) is let go the same way", async () => {
    const r = await runGuarded(`Object.assign(new Error("terminating connection due to unexpected postmaster exit"), { code: "57P01" })`);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("alive");
  });

  it("any other unhandled rejection is logged at fatal and ends the process with code 1", async () => {
    const r = await runGuarded(`new TypeError("x is undefined")`);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain("alive");
    expect(r.lines[0]).toMatchObject({ level: "fatal" });
    expect(r.lines[0].msg).toContain("x is undefined");
  });
});
