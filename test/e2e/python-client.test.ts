// Any gRPC language: the Python examples (stubs generated from proto/ with
// Debian's protoc and grpcio) submit pipelines that a TypeScript worker runs,
// and one signals a run waiting for an approval.

import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as t from "../../examples/tasks.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const exec = promisify(execFile);
const PYTHON = "/usr/bin/python3";

function pythonGrpcMissing(): string | undefined {
  try {
    execFileSync(PYTHON, ["-c", "import grpc, google.protobuf"], { stdio: "ignore" });
    execFileSync("protoc", ["--version"], { stdio: "ignore" });
    execFileSync("which", ["grpc_python_plugin"], { stdio: "ignore" });
  } catch {
    return "python3-grpcio, protobuf-compiler or protobuf-compiler-grpc is not installed (.ci/run installs them)";
  }
  const include = process.env.PROTOBUF_INCLUDE ?? "/usr/include";
  if (!existsSync(`${include}/google/protobuf/duration.proto`)) return "libprotobuf-dev (protoc's well-known types) is not installed (.ci/run installs it)";
  return undefined;
}

const missing = pythonGrpcMissing();
let ts: TestServer;

describe("Python client", () => {
  beforeAll(async () => {
    if (missing) return;
    ts = await startTestServer();
    await ts.worker({ tasks: t.allTasks, slots: 2 });
  });
  afterAll(() => ts?.stop());

  it.skipIf(!!missing)(`submits multiply(3, 2) then divide by 2 and prints 3${missing ? ` [skipped: ${missing}]` : ""}`, async () => {
    // The address from PIPEWRIGHT_ADDRESS, as every client and worker takes it.
    const { stdout } = await exec(PYTHON, ["examples/python/submit_pipeline.py"], { timeout: 60_000, env: { ...process.env, PIPEWRIGHT_ADDRESS: ts.address } });
    expect(stdout.trim()).toBe("3");
  });

  it.skipIf(!!missing)(`signals a waiting run (a human in the loop) and prints 21 × 2 = 42${missing ? ` [skipped: ${missing}]` : ""}`, async () => {
    const { stdout, stderr } = await exec(PYTHON, ["examples/python/approve.py"], { timeout: 60_000, env: { ...process.env, PIPEWRIGHT_ADDRESS: ts.address } });
    expect(stdout.trim()).toBe("42");
    expect(stderr).toMatch(/signal approve: SIGNAL_DELIVERY_(DELIVERED|KEPT)/); // kept if it arrived before the wait began
  });
});
