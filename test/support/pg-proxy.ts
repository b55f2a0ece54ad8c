// A TCP proxy in front of PostgreSQL that can lose one answer: the
// connection that sent a given statement is cut once the answer to it
// arrives, so PostgreSQL has committed the statement and the client never
// learns it (what a crash or a network cut between the two does).

import net from "node:net";

export class PgProxy {
  private readonly sockets = new Set<net.Socket>();
  private armed?: { statement: string; tag: Buffer; done: () => void };

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port, forwarding to `target` (host:port). */
  static async start(target: { host: string; port: number }): Promise<PgProxy> {
    let proxy: PgProxy | undefined;
    const server = net.createServer((client) => proxy!.pipe(client, target));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new PgProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /** `url` with this proxy in place of its host and port. */
  url(url: string): string {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /**
   * Cuts the connection that sends `statement` (a piece of its text) when
   * the server's answer holding `tag` (a CommandComplete tag such as
   * "UPDATE 1") comes back, instead of passing it on. PostgreSQL flushes an
   * extended-protocol answer at Sync, after the implicit commit: by then the
   * statement is committed. Resolves once an answer was lost.
   */
  loseAnswer(statement: string, tag: string): Promise<void> {
    return new Promise((done) => (this.armed = { statement, tag: Buffer.from(`${tag}\0`), done }));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private pipe(client: net.Socket, target: { host: string; port: number }): void {
    const upstream = net.connect(target.port, target.host);
    this.sockets.add(client).add(upstream);
    let sentStatement = false;
    let tail = Buffer.alloc(0); // the end of the previous chunk, for a tag cut in two
    client.on("data", (d) => {
      if (this.armed && d.includes(this.armed.statement)) sentStatement = true;
      upstream.write(d);
    });
    upstream.on("data", (d) => {
      const armed = this.armed;
      if (armed && sentStatement && Buffer.concat([tail, d]).includes(armed.tag)) {
        this.armed = undefined;
        client.destroy();
        upstream.destroy();
        armed.done();
        return;
      }
      tail = d.subarray(-32);
      client.write(d);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("close", close).on("error", close);
    upstream.on("close", close).on("error", close);
  }
}
