// GroupCommitter (server/engine/group-committer.ts) on its own: pure logic, no database. Its
// flush is a test double whose batches stay in flight until the test finishes them, so each
// test sees exactly which batches exist at once and what each holds.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GroupCommitter } from "../../server/engine/group-committer.js";

interface Item {
  id: string;
  /** The order key (a run); none: orders with nothing. */
  key?: string;
}

interface Batch {
  ids: string[];
  /** The lock function the committer gave this batch. */
  lock: (key: string) => boolean;
  /** Ends the flush. `before` runs inside it first (a retry, a lock). */
  finish: (before?: () => void) => void;
  done: boolean;
}

/** A committer whose flushes wait for the test; `batches` in the order they started. */
function harness(maxConcurrent = 4, maxBatch = 2000) {
  const batches: Batch[] = [];
  const committer = new GroupCommitter<Item>(
    (items, lock) =>
      new Promise<void>((resolve) => {
        const batch: Batch = {
          ids: items.map((i) => i.id),
          lock,
          done: false,
          finish: (before) => {
            if (batch.done) throw new Error("batch finished twice");
            before?.();
            batch.done = true;
            resolve();
          },
        };
        batches.push(batch);
      }),
    (item) => item.key,
    maxConcurrent,
    maxBatch,
  );
  return {
    committer,
    batches,
    inFlight: () => batches.filter((b) => !b.done),
    /** Ids of the batches in flight, oldest first. */
    inFlightIds: () => batches.filter((b) => !b.done).map((b) => b.ids),
  };
}

/** Lets the committer act on a finished flush: its finally, then its setImmediate re-pump. */
async function turn(times = 3): Promise<void> {
  for (let i = 0; i < times; i++) await new Promise((resolve) => setImmediate(resolve));
}

function item(id: string, key?: string): Item {
  return key === undefined ? { id } : { id, key };
}

describe("GroupCommitter", () => {
  it("keeps the items of one key out of a second batch while one is in flight, and in order", async () => {
    const h = harness(4);
    h.committer.add(item("a1", "A"));
    h.committer.add(item("a2", "A")); // A is in flight: waits
    h.committer.add(item("b1", "B")); // B is free: a batch of its own, now
    h.committer.add(item("a3", "A"));
    expect(h.inFlightIds()).toEqual([["a1"], ["b1"]]);

    h.batches[0].finish();
    await turn();
    expect(h.inFlightIds()).toEqual([["b1"], ["a2", "a3"]]); // together, in their order
  });

  it("runs batches concurrently up to the limit, and no further", async () => {
    // maxBatch 2 splits what is pending into several batches at once; maxConcurrent 3 caps them.
    const h = harness(3, 2);
    h.committer.addAll(["1", "2", "3", "4", "5", "6", "7"].map((id) => item(id, `k${id}`)));
    expect(h.inFlightIds()).toEqual([
      ["1", "2"],
      ["3", "4"],
      ["5", "6"],
    ]);
    expect(h.committer.size).toBe(1);

    h.batches[1].finish();
    await turn();
    expect(h.inFlightIds()).toEqual([["1", "2"], ["5", "6"], ["7"]]);
  });

  it("lets items without a key run in concurrent batches (they order with nothing)", () => {
    const h = harness(3);
    h.committer.add(item("x"));
    h.committer.add(item("y"));
    h.committer.add(item("z"));
    expect(h.inFlightIds()).toEqual([["x"], ["y"], ["z"]]);
  });

  it("puts the items added while batches run into the next batch, all together", async () => {
    const h = harness(1);
    h.committer.add(item("first", "A"));
    h.committer.add(item("second", "B"));
    h.committer.add(item("third"));
    h.committer.addAll([item("fourth", "A"), item("fifth", "C")]);
    expect(h.inFlightIds()).toEqual([["first"]]);
    expect(h.committer.size).toBe(4);

    h.batches[0].finish();
    await turn();
    expect(h.inFlightIds()).toEqual([["second", "third", "fourth", "fifth"]]);
    expect(h.committer.size).toBe(0);
  });

  it("retry() puts the items back before those already waiting", async () => {
    const h = harness(1);
    h.committer.add(item("a1", "A"));
    h.committer.add(item("b1", "B"));
    h.committer.add(item("a2", "A"));
    expect(h.inFlightIds()).toEqual([["a1"]]);

    // The batch fails and gives its items back (what RunEngine does), then ends.
    h.batches[0].finish(() => h.committer.retry([item("a1", "A")]));
    await turn();
    expect(h.inFlightIds()).toEqual([["a1", "b1", "a2"]]);
  });

  it("idle() resolves only once everything added has been flushed", async () => {
    const h = harness(1);
    await h.committer.idle(); // nothing added: at once

    let idle = false;
    h.committer.add(item("a", "A"));
    h.committer.add(item("b", "B"));
    void h.committer.idle().then(() => (idle = true));
    await turn();
    expect(idle).toBe(false); // a in flight, b pending

    // a fails and is given back: for a moment no batch runs, but a and b are still pending.
    h.batches[0].finish(() => h.committer.retry([item("a", "A")]));
    await turn();
    expect(idle).toBe(false);
    expect(h.inFlightIds()).toEqual([["a", "b"]]);

    h.batches[1].finish();
    await turn();
    expect(idle).toBe(true);
  });

  it("idle() waits for a batch in flight even when nothing is pending", async () => {
    const h = harness(1);
    h.committer.add(item("a", "A"));
    expect(h.committer.size).toBe(0);
    let idle = false;
    void h.committer.idle().then(() => (idle = true));
    await turn();
    expect(idle).toBe(false);
    h.batches[0].finish();
    await turn();
    expect(idle).toBe(true);
  });

  describe("lock(key), given to each flush", () => {
    it("holds a key the batch already has", () => {
      const h = harness();
      h.committer.add(item("a", "A"));
      expect(h.batches[0].lock("A")).toBe(true);
    });

    it("takes a free key: new items of that key wait for the batch, and it is free again after", async () => {
      const h = harness(4);
      h.committer.add(item("a", "A"));
      expect(h.batches[0].lock("R")).toBe(true); // a run the batch discovered on its way
      expect(h.batches[0].lock("R")).toBe(true); // and holds now

      h.committer.add(item("r1", "R"));
      h.committer.add(item("b", "B"));
      expect(h.inFlightIds()).toEqual([["a"], ["b"]]); // r1 waits: R is held
      expect(h.batches[1].lock("R")).toBe(false); // another batch cannot have it

      h.batches[0].finish();
      await turn();
      expect(h.inFlightIds()).toEqual([["b"], ["r1"]]); // released with its batch
    });

    it("refuses a key another batch in flight holds, and does not take it", async () => {
      const h = harness(4);
      h.committer.add(item("a", "A"));
      h.committer.add(item("b", "B"));
      expect(h.batches[1].lock("A")).toBe(false);

      // Refused, so B's batch does not hold A: when A's batch ends, A's next item starts at once
      // although B's batch is still in flight.
      h.committer.add(item("a2", "A"));
      h.batches[0].finish();
      await turn();
      expect(h.inFlightIds()).toEqual([["b"], ["a2"]]);
    });
  });

  it("property: every item is flushed once; a key is never in two batches in flight; each key keeps its order", async () => {
    type Step =
      | { op: "add"; key: string | undefined }
      | { op: "addAll"; keys: (string | undefined)[] }
      | { op: "lock"; pick: number; key: string }
      | { op: "finish"; pick: number; retry: boolean };
    const key = fc.constantFrom<string | undefined>("A", "B", "C", "D", undefined);
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ op: fc.constant("add" as const), key }),
      fc.record({ op: fc.constant("addAll" as const), keys: fc.array(key, { maxLength: 5 }) }),
      fc.record({ op: fc.constant("lock" as const), pick: fc.nat(), key: fc.constantFrom("A", "B", "C", "D") }),
      fc.record({ op: fc.constant("finish" as const), pick: fc.nat(), retry: fc.boolean() }),
    );

    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { maxLength: 40 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        async (steps, maxConcurrent, maxBatch) => {
          const h = harness(maxConcurrent, maxBatch);
          const keyOf = new Map<string, string | undefined>();
          const added: string[] = [];
          const flushed: string[] = []; // in commit order: items of a batch that was not retried
          /** Keys held by each batch in flight: its items' keys and those it locked. */
          const held = new Map<Batch, Set<string>>();
          let n = 0;
          const fresh = (k: string | undefined) => {
            const id = `i${n++}`;
            keyOf.set(id, k);
            added.push(id);
            return item(id, k);
          };
          const check = () => {
            for (const b of h.batches) {
              if (!b.done && !held.has(b)) held.set(b, new Set(b.ids.map((id) => keyOf.get(id)).filter((k) => k !== undefined)));
            }
            const live = [...held.entries()].filter(([b]) => !b.done);
            expect(live.length).toBeLessThanOrEqual(maxConcurrent);
            const seen = new Set<string>();
            for (const [b, keys] of live) {
              expect(b.ids.length).toBeLessThanOrEqual(maxBatch);
              for (const k of keys) {
                expect(seen.has(k), `key ${k} in two batches in flight`).toBe(false);
                seen.add(k);
              }
            }
          };
          const finish = (b: Batch, retry: boolean) => {
            b.finish(() => {
              if (retry) h.committer.retry(b.ids.map((id) => item(id, keyOf.get(id))));
              else flushed.push(...b.ids);
            });
          };

          for (const s of steps) {
            if (s.op === "add") h.committer.add(fresh(s.key));
            else if (s.op === "addAll") h.committer.addAll(s.keys.map(fresh));
            else if (s.op === "lock") {
              const live = h.inFlight();
              if (live.length) {
                const b = live[s.pick % live.length];
                // Refused only when another batch in flight holds the key.
                const elsewhere = [...held.entries()].some(([other, keys]) => other !== b && !other.done && keys.has(s.key));
                expect(b.lock(s.key)).toBe(!elsewhere);
                if (!elsewhere) held.get(b)!.add(s.key);
              }
            } else {
              const live = h.inFlight();
              if (live.length) finish(live[s.pick % live.length], s.retry);
              await turn(2);
            }
            check();
          }
          // Drain: finish whatever runs until idle.
          let idle = false;
          void h.committer.idle().then(() => (idle = true));
          for (let guard = 0; !idle; guard++) {
            expect(guard, "the committer stalled with items pending").toBeLessThan(10_000);
            const live = h.inFlight();
            if (live.length) finish(live[0], false);
            await turn(2);
            check();
          }

          expect([...flushed].sort()).toEqual([...added].sort());
          for (const k of ["A", "B", "C", "D"]) {
            const order = (ids: string[]) => ids.filter((id) => keyOf.get(id) === k);
            expect(order(flushed), `order of key ${k}`).toEqual(order(added));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
