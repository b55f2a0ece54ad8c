// A server as its own OS process (node --import tsx server/main.ts: one PID),
// for tests that stop it with signals or kill it outright.

import { spawn, type ChildProcess } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { healthDefinition, type HealthCheckResponse } from "../../server/api/health.js";

export interface ServerProcess {
  child: ChildProcess;
  address: string;
  output(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

/**
 * Starts `server/main.ts` with these arguments and waits for its "listening" line. `wrapper`: a
 * command that runs node in its place (e.g. `ip netns exec NS`); it must exec, so that the child's
 * PID is the server's.
 */
export async function spawnServer(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000, wrapper: string[] = []): Promise<ServerProcess> {
  const [command, ...prefix] = [...wrapper, process.execPath];
  const child = spawn(command, [...prefix, "--import", "tsx", "server/main.ts", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  // A server that dies by itself (an exit code other than 0; the tests' kills end it by signal)
  // is a bug to chase: its last output goes to the test log, where a failed test would not show it.
  void exited.then((code) => {
    if (typeof code === "number" && code !== 0)
      process.stderr.write(`server process ${child.pid} exited with code ${code}; its last output:\n${out.slice(-8000)}\n`);
  });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const check = () => {
      const m = /pipewright listening on (\S+),/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on("data", check);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}`));
    });
  });
  return { child, address, output: () => out, exited };
}

/** grpc.health.v1 Check of the whole server: "SERVING", "NOT_SERVING", ... */
export async function healthStatus(address: string): Promise<string> {
  const Health = grpc.makeGenericClientConstructor(healthDefinition, "Health");
  const client = new Health(address, grpc.credentials.createInsecure()) as unknown as {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: HealthCheckResponse) => void): void;
    close(): void;
  };
  try {
    const res = await new Promise<HealthCheckResponse>((resolve, reject) => client.Check({ service: "" }, (err, r) => (err ? reject(err) : resolve(r))));
    return ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"][res.status];
  } finally {
    client.close();
  }
}
