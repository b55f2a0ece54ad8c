// Comparing an outcome with what the semantics require.

import { expect } from "vitest";
import type { RemoteError } from "../../proto/runtime/values.js";
import type { Expected } from "./semantic-cases.js";

export type Outcome = { ok: true; value: unknown; state: unknown } | { ok: false; error: RemoteError; state: unknown };

/** Plain JSON: RemoteErrors become {type, message, origin, details, causes}. */
export function plain(v: unknown): unknown {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

export function expectOutcome(actual: Outcome, expected: Expected, label: string): void {
  if (expected.ok) {
    expect(actual.ok ? { value: plain(actual.value) } : { error: plain(actual.error) }, label).toEqual({ value: expected.value });
  } else {
    expect(actual.ok, `${label}: expected a failure, got ${JSON.stringify(plain(actual.ok ? actual.value : null))}`).toBe(false);
    if (!actual.ok) {
      expect(actual.error.type, label).toBe(expected.type);
      if (expected.message !== undefined) expect(actual.error.message, label).toBe(expected.message);
      if (expected.origin !== undefined) expect(actual.error.origin, label).toBe(expected.origin);
    }
  }
  if ("state" in expected) expect(plain(actual.state), `${label}: state`).toEqual(expected.state);
}
