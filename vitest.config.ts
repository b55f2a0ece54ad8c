import { readFileSync } from "node:fs";
import path from "node:path";
import { defineConfig } from "vitest/config";
import { isUnavailable } from "./server/store/database-errors.js";

// Inside the repository the packages (@pipewright/protocol, client, worker, server) are used
// from their TypeScript sources, as tsconfig.json's `paths` say (tsc and tsx read them there);
// a package built for users resolves the others through their built `exports`.
const { paths } = JSON.parse(readFileSync(new URL("./tsconfig.json", import.meta.url), "utf8")).compilerOptions as { paths: Record<string, string[]> };
const alias = Object.entries(paths)
  // Longest first: "@pipewright/worker/testing" before "@pipewright/worker".
  .sort(([a], [b]) => b.length - a.length)
  .map(([name, [target]]) => ({ find: new RegExp(`^${name.replace(/[/.]/g, "\\$&")}$`), replacement: path.resolve(import.meta.dirname, target) }));

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/**/*.test.ts"],
    // One PostgreSQL server for the run; each test file copies a migrated template database.
    globalSetup: ["test/support/global-setup.ts"],
    // Tests talk to a real database with fsync on, on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Tests that run a server in their own process and kill its PostgreSQL meet the
    // driver's dropped promise (server/cli/process-guard.ts): let it go as the server
    // process does. Every other unhandled error still fails the run.
    onUnhandledError: (error) => !isUnavailable(error),
    maxWorkers: 2,
  },
});
