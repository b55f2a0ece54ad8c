// A real server for a test file: its own database (a copy of the migrated
// template), a gRPC server on a free loopback port, real clients and workers.

import { appendFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { PipewrightClient } from "../../client/client.js";
import { DEFAULT_CONFIG, type ServerConfig } from "../../server/config.js";
import { startServer, type RunningServer } from "../../server/server.js";
import { Worker, type WorkerOptions } from "../../worker-sdk/worker.js";
import { createLogger, type Logger } from "../../server/observe/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export interface TestServer {
  server: RunningServer;
  address: string;
  db: TestDatabase;
  config: ServerConfig;
  client(): PipewrightClient;
  /** Starts a worker connected to this server (stopped by `stop()`). */
  worker(options: Omit<WorkerOptions, "address">): Promise<Worker>;
  /** Stops the server (workers and clients stay, to test reconnection). */
  stopServer(): Promise<void>;
  /** Starts the server again on the same database and port. */
  restartServer(): Promise<void>;
  /** Stops everything and drops the database. */
  stop(): Promise<void>;
}

/** `logger`: where the server logs (default: nothing, unless PIPEWRIGHT_TEST_LOG asks for it). */
export async function startTestServer(overrides: Partial<ServerConfig> = {}, logger?: Logger): Promise<TestServer> {
  const db = await createTestDatabase();
  const config: ServerConfig = { ...DEFAULT_CONFIG, address: "127.0.0.1:0", databaseUrl: db.url, drainGraceMs: 2000, ...overrides };
  // PIPEWRIGHT_TEST_LOG=1 prints the server's log (debug and up, pretty); PIPEWRIGHT_TEST_LOG_FILE=path appends it to a file as JSON lines.
  const logFile = process.env.PIPEWRIGHT_TEST_LOG_FILE;
  const log =
    logger ??
    (logFile
      ? createLogger({ level: "debug", format: "json", sink: { write: (l: string) => appendFileSync(logFile, l) } })
      : process.env.PIPEWRIGHT_TEST_LOG
        ? createLogger({ level: "debug", format: "pretty", sink: process.stdout })
        : undefined);
  let server = await startServer(config, log);
  const clients: PipewrightClient[] = [];
  const workers: Worker[] = [];
  const self: TestServer = {
    get server() {
      return server;
    },
    address: server.address,
    db,
    config,
    client() {
      const c = new PipewrightClient(self.address);
      clients.push(c);
      return c;
    },
    async worker(options) {
      const w = new Worker({ log: () => {}, ...options, address: self.address, reconnectDelayMs: { initial: 50, max: 500 } });
      workers.push(w);
      await w.start();
      return w;
    },
    async stopServer() {
      await server.stop();
    },
    async restartServer() {
      server = await startServer({ ...config, address: self.address }, log);
      // Clients made with the default options share grpc-js's connection to this address,
      // which the stop left failed and retrying (every 100 ms to 1 s): a call made before it
      // reconnects fails at once with UNAVAILABLE, as it would for any gRPC client. Wait for it.
      const probe = new PipewrightClient(self.address);
      const metadata = new grpc.Metadata();
      metadata.setOptions({ waitForReady: true });
      try {
        await probe.rpc.listRuns({ pageSize: 1 }, { deadline: Date.now() + 5000, metadata });
      } finally {
        probe.close();
      }
    },
    async stop() {
      // A worker drains before stopping; a test that left a task hanging must not hang the suite.
      const stopWorkers = Promise.all(workers.map((w) => w.stop().catch(() => {})));
      await Promise.race([stopWorkers, new Promise((r) => setTimeout(r, 5000))]);
      for (const c of clients) c.close();
      await server.stop();
      await db.drop();
    },
  } as TestServer;
  return self;
}
