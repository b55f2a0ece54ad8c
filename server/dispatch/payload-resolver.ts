// Puts big payloads back into assignments read from the queue (their stored
// form refers to them: see server/core/payload-refs.ts) before they go to a
// worker. Recently used payloads are kept in memory, up to a budget: the
// branches of one group share theirs, so one read serves them all.

import { fromBinary } from "@bufbuild/protobuf";
import { TaskAssignmentSchema, type TaskAssignment } from "@pipewright/protocol";
import { create } from "@bufbuild/protobuf";
import { ValueMapSchema, type Value } from "@pipewright/protocol";
import { internalize, mayHoldRefs, refsIn } from "../core/payload-refs.js";
import type { Sql } from "../store/database.js";
import { loadBlobs } from "../store/payload-blobs.js";

export class PayloadResolver {
  /** By `${runId}/${hash}`; insertion order is recency (re-inserted on use). */
  private readonly cache = new Map<string, Uint8Array>();
  private cached = 0;

  constructor(
    private readonly sql: Sql,
    private readonly maxCachedBytes = 128 * 1024 * 1024,
  ) {}

  /** Whether stored bytes may need resolving (most do not: one byte search). */
  needs(stored: Uint8Array): boolean {
    return mayHoldRefs(stored);
  }

  /** The full assignment of a queue row. */
  async resolve(runId: number, stored: Uint8Array): Promise<TaskAssignment> {
    const a = fromBinary(TaskAssignmentSchema, stored);
    const refs = new Map<string, Uint8Array>();
    for (const v of carried(a)) refsIn(v, refs);
    if (refs.size === 0) return a;
    const found = new Map<string, Uint8Array>();
    const missing: Uint8Array[] = [];
    for (const [hex, hash] of refs) {
      const data = this.get(`${runId}/${hex}`);
      if (data) found.set(hex, data);
      else missing.push(hash);
    }
    for (const b of await loadBlobs(this.sql, runId, missing)) {
      const hex = Buffer.from(b.hash).toString("hex");
      found.set(hex, b.data);
      this.put(`${runId}/${hex}`, b.data);
    }
    const entries = (e: Record<string, Value>) => Object.fromEntries(Object.entries(e).map(([k, v]) => [k, internalize(v, found)]));
    a.args = a.args.map((v) => internalize(v, found));
    a.kwargs = entries(a.kwargs);
    if (a.state) a.state = internalize(a.state, found);
    if (a.parentResults) a.parentResults = create(ValueMapSchema, { entries: entries(a.parentResults.entries) });
    return a;
  }

  private get(key: string): Uint8Array | undefined {
    const data = this.cache.get(key);
    if (data) {
      this.cache.delete(key);
      this.cache.set(key, data);
    }
    return data;
  }

  private put(key: string, data: Uint8Array): void {
    if (data.length > this.maxCachedBytes / 4) return; // one payload may not take the whole cache
    this.cache.set(key, data);
    this.cached += data.length;
    for (const [k, d] of this.cache) {
      if (this.cached <= this.maxCachedBytes) break;
      this.cache.delete(k);
      this.cached -= d.length;
    }
  }
}

function carried(a: TaskAssignment): (Value | undefined)[] {
  return [...a.args, ...Object.values(a.kwargs), a.state, ...(a.parentResults ? Object.values(a.parentResults.entries) : [])];
}
