// The client's "retry later" rule for calls safe to repeat (submits, which carry a request id):
// an UNAVAILABLE the server answered is tried again, a few times with a growing pause; a server
// that cannot be reached at all, and any other status, fail at once.

import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CallError, retryLater, ServerUnavailableError } from "../../client/call-errors.js";

const status = (code: grpc.status, details = "x") => ({ code, details });

/** A call failing with `errors` in turn, then answering "ok"; counts its tries. */
function flaky(errors: Error[]) {
  const calls = { n: 0 };
  const call = async () => {
    const e = errors[calls.n++];
    if (e) throw e;
    return "ok";
  };
  return { call, calls };
}

describe("retryLater", () => {
  it("tries again while the server answers UNAVAILABLE, and returns the answer that comes", async () => {
    const later = new CallError("UNAVAILABLE: could not persist the change, retry later", status(grpc.status.UNAVAILABLE));
    const { call, calls } = flaky([later, later]);
    expect(await retryLater(call)).toBe("ok");
    expect(calls.n).toBe(3);
  });

  it("gives up after four more tries, with the server's error", async () => {
    const later = new CallError("UNAVAILABLE: shutting down", status(grpc.status.UNAVAILABLE));
    const { call, calls } = flaky(Array(10).fill(later));
    await expect(retryLater(call)).rejects.toBe(later);
    expect(calls.n).toBe(5);
  });

  it("fails at once for a server that cannot be reached, and for any other status", async () => {
    for (const err of [
      new ServerUnavailableError("127.0.0.1:1", status(grpc.status.UNAVAILABLE, "No connection established")),
      new CallError("INVALID_ARGUMENT: bad", status(grpc.status.INVALID_ARGUMENT)),
      new CallError("ALREADY_EXISTS: taken", status(grpc.status.ALREADY_EXISTS)),
    ]) {
      const { call, calls } = flaky([err]);
      await expect(retryLater(call)).rejects.toBe(err);
      expect(calls.n).toBe(1);
    }
  });
});
