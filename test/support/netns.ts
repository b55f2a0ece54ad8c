// A Linux network namespace of a test's own, joined to the host's by a veth pair
// on a private /30 (10.213.X.Y+1 outside, 10.213.X.Y+2 inside, X and Y picked at
// random so that parallel runs do not collide): a server run inside it with
// `ip netns exec` listens on a real, non-loopback address, and the test
// process reaches it across the veth. Needs root and iproute2's `ip`;
// netnsUnavailable() says why not when it cannot be had.

import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import net from "node:net";

export interface Netns {
  name: string;
  /** The host's end of the veth (in the test process's namespace). */
  outside: string;
  /** The namespace's end: what a server inside listens on. */
  inside: string;
  /** The command prefix that runs a program inside the namespace (it execs: same PID). */
  exec: string[];
  /**
   * Forwards TCP connections made to `outside:<port>` (from inside the namespace) to `target`
   * in the host's namespace; resolves with the port. Closed by remove().
   */
  relay(target: { host: string; port: number }): Promise<number>;
  /** Closes the relays and deletes the namespace (its end of the veth, then the whole pair, go with it once no process is left inside). */
  remove(): Promise<void>;
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string | Buffer; message?: string };
  return (e.stderr?.toString().trim() || e.message || String(err)).split("\n")[0];
}

/**
 * Why this machine cannot give a test a network namespace (undefined: it can). Tried for
 * real, with a namespace added and deleted at once: root alone does not prove it (a container
 * without CAP_SYS_ADMIN, or a read-only /run, refuses `ip netns add`).
 */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces are Linux only";
  if (process.getuid?.() !== 0) return "not root: `ip netns add` needs CAP_SYS_ADMIN";
  try {
    ip("-V");
  } catch {
    return "no `ip` binary (Debian: apt-get install iproute2; .ci/run installs it)";
  }
  const probe = `pw-probe-${randomBytes(4).toString("hex")}`;
  try {
    ip("netns", "add", probe);
  } catch (err) {
    return `\`ip netns add\` failed: ${stderrOf(err)}`;
  }
  try {
    ip("netns", "del", probe);
  } catch {
    // Added but not deleted: still usable; the leftover name is harmless.
  }
  return undefined;
}

/** A /30 in 10.213.0.0/16 that no interface of the host has an address in yet. */
function freeSubnet(): { outside: string; inside: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [x, y] = [randomInt(256), randomInt(64) * 4];
    if (ip("-4", "-o", "addr", "show", "to", `10.213.${x}.${y}/30`).trim() === "") return { outside: `10.213.${x}.${y + 1}`, inside: `10.213.${x}.${y + 2}` };
  }
  throw new Error("no free /30 found in 10.213.0.0/16");
}

/** Deletes what exists of a namespace and its veth; never throws (used on failure paths and at exit). */
function removeQuietly(name: string, outsideLink: string): void {
  for (const args of [
    ["netns", "del", name],
    ["link", "del", outsideLink], // gone already when its peer was in the namespace; not when setup failed before the move
  ]) {
    try {
      ip(...args);
    } catch {
      // Not there: nothing to do.
    }
  }
}

export async function createNetns(): Promise<Netns> {
  const id = randomBytes(3).toString("hex");
  const name = `pw-${id}`;
  // Interface names are at most 15 characters.
  const [outsideLink, insideLink] = [`pw${id}o`, `pw${id}i`];
  const { outside, inside } = freeSubnet();
  // Should the test process end without its afterAll (a crash, process.exit), the namespace goes all the same.
  const atExit = () => removeQuietly(name, outsideLink);
  process.on("exit", atExit);
  try {
    ip("netns", "add", name);
    ip("link", "add", outsideLink, "type", "veth", "peer", "name", insideLink);
    ip("link", "set", insideLink, "netns", name);
    ip("addr", "add", `${outside}/30`, "dev", outsideLink);
    ip("link", "set", outsideLink, "up");
    ip("-n", name, "addr", "add", `${inside}/30`, "dev", insideLink);
    ip("-n", name, "link", "set", insideLink, "up");
    ip("-n", name, "link", "set", "lo", "up");
  } catch (err) {
    atExit();
    process.off("exit", atExit);
    throw new Error(`cannot set up network namespace ${name}: ${stderrOf(err)}`, { cause: err });
  }

  const relays: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  return {
    name,
    outside,
    inside,
    exec: ["ip", "netns", "exec", name],
    async relay(target) {
      const server = net.createServer((from) => {
        const to = net.connect(target.port, target.host);
        for (const [a, b] of [
          [from, to],
          [to, from],
        ]) {
          sockets.add(a);
          a.on("error", () => b.destroy());
          a.on("close", () => {
            sockets.delete(a);
            b.destroy();
          });
          a.pipe(b);
        }
      });
      relays.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, outside, resolve);
      });
      return (server.address() as net.AddressInfo).port;
    },
    async remove() {
      for (const s of sockets) s.destroy();
      await Promise.all(relays.map((r) => new Promise((done) => r.close(done))));
      removeQuietly(name, outsideLink);
      process.off("exit", atExit);
    },
  };
}
