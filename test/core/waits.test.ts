// Wait steps in the run machine (server/core/run-machine.ts, core/waits.ts): sleeps,
// signals and events, with time given by the test. No database, no clock: the
// end-to-end tests (test/e2e/waits.test.ts) run the same through real server processes.

import { encodeValue, decodeValue, RunState, type Value } from "@pipewright/protocol";
import { describe, expect, it } from "vitest";
import { inParallel, sleep, waitForSignal, type Pipeline } from "../../client/pipeline-builder.js";
import { taskRef } from "../../client/task-ref.js";
import { RunMachine, type Effect, type RunInput } from "../../server/core/run-machine.js";
import { stepStatuses } from "../../server/core/step-statuses.js";

const a = taskRef<[n: number], number>("a");
const b = taskRef<[x: unknown], unknown>("b");
const handle = taskRef<[e: unknown], string>("handle");

const dispatched = (effects: Effect[]) => effects.flatMap((e) => (e.type === "dispatch" ? [e.dispatch] : []));
const value = (v: unknown) => ({ case: "value" as const, value: encodeValue(v) });

/** Applies and records inputs, so a test can replay them into a fresh machine. */
class Driven {
  readonly inputs: RunInput[] = [];
  constructor(readonly machine: RunMachine) {}
  apply(input: RunInput): Effect[] {
    this.inputs.push(input);
    return this.machine.apply(input);
  }
}

function start(p: Pipeline<any>, at = 0): { d: Driven; first: Effect[] } {
  const d = new Driven(new RunMachine(p.toProto()));
  return { d, first: d.apply({ type: "start", at }) };
}

function argsOf(effects: Effect[]): unknown[][] {
  return dispatched(effects).map((x) => x.input.args.map((v: Value) => decodeValue(v)));
}

describe("sleep", () => {
  it("holds the pipeline until its time, passes the previous result on, and wakes nothing early", () => {
    const { d, first } = start(a.send(1).sleep(1000).continueWith(b));
    const [x] = dispatched(first);
    const after = d.apply({ type: "taskFinished", at: 10, step: x.step, outcome: value(5) });
    expect(dispatched(after)).toEqual([]);
    expect(d.machine.nextWakeAt()).toBe(1010);
    expect(dispatched(d.apply({ type: "wake", at: 1009 }))).toEqual([]);
    const woke = d.apply({ type: "wake", at: 1010 });
    expect(argsOf(woke)).toEqual([[5]]);
    expect(d.machine.nextWakeAt()).toBeUndefined();
  });

  it("until a time already past ends at once", () => {
    const { first } = start(sleep({ until: new Date(500) }).continueWith(b), 1000);
    expect(dispatched(first).map((x) => x.call.task)).toEqual(["b"]);
  });

  it("a cancel ends a sleeping run at once, and nothing wakes afterwards", () => {
    const { d } = start(sleep(60_000).continueWith(b));
    expect(d.machine.nextWakeAt()).toBe(60_000);
    d.apply({ type: "cancel", at: 5, reason: "no" });
    expect(d.machine.runState).toBe(RunState.CANCELLED);
    expect(d.machine.nextWakeAt()).toBeUndefined();
    const wait = stepStatuses(d.machine.graph).steps[0];
    expect(wait.waitingFor).toBe("sleep 1m");
  });

  it("branches sleeping for different times wake in their own order, one wake for all those due", () => {
    const { d } = start(inParallel([sleep(300).continueWith(b), sleep(100).continueWith(b), sleep(100).continueWith(b)]));
    expect(d.machine.nextWakeAt()).toBe(100);
    expect(dispatched(d.apply({ type: "wake", at: 150 })).length).toBe(2);
    expect(d.machine.nextWakeAt()).toBe(300);
  });
});

describe("signals", () => {
  it("a signal sent before the step is reached is kept for it", () => {
    const { d, first } = start(a.send(1).waitForSignal("approve").continueWith(b));
    d.apply({ type: "signal", at: 1, name: "approve", payload: encodeValue({ ok: true }) });
    expect(d.machine.lastSignal).toBe("kept");
    const after = d.apply({ type: "taskFinished", at: 2, step: dispatched(first)[0].step, outcome: value(1) });
    expect(argsOf(after)).toEqual([[{ ok: true }]]);
  });

  it("a signal ends the wait that began first; a repeated signal id changes nothing", () => {
    const { d } = start(inParallel([waitForSignal("go").continueWith(b), waitForSignal("go").continueWith(b)]));
    const one = d.apply({ type: "signal", at: 1, name: "go", payload: encodeValue("first"), id: "s1" });
    expect(d.machine.lastSignal).toBe("delivered");
    expect(argsOf(one)).toEqual([["first"]]);
    expect(dispatched(d.apply({ type: "signal", at: 2, name: "go", payload: encodeValue("again"), id: "s1" }))).toEqual([]);
    expect(d.machine.lastSignal).toBe("duplicate");
    expect(argsOf(d.apply({ type: "signal", at: 3, name: "go", payload: encodeValue("second") }))).toEqual([["second"]]);
  });

  it("a signal of another name does not end the wait", () => {
    const { d } = start(waitForSignal("approve").continueWith(b));
    expect(dispatched(d.apply({ type: "signal", at: 1, name: "reject", payload: encodeValue(1) }))).toEqual([]);
    expect(d.machine.waits.keptSignals).toBe(1);
  });

  it("the timeout fails the step with pipewright.Timeout, which an exceptionally step can take", () => {
    const { d } = start(waitForSignal("approve", { timeoutMs: 5000 }).exceptionally(handle));
    const timedOut = d.apply({ type: "wake", at: 5000 });
    const [h] = dispatched(timedOut);
    const error = decodeValue(h.input.args[0]) as { type: string; message: string };
    expect(error.type).toBe("pipewright.Timeout");
    expect(error.message).toContain("signal approve");
    // a signal after the timeout is kept, not delivered to the failed step
    d.apply({ type: "signal", at: 6000, name: "approve", payload: encodeValue(1) });
    expect(d.machine.lastSignal).toBe("kept");
  });
});

describe("events", () => {
  it("an event ends every wait for its name; one published before the wait began is not kept", () => {
    const p = a.send(1).continueWith(inParallel([b.send(0).waitForEvent("paid"), b.send(0).waitForEvent("paid")]));
    const { d, first } = start(p as never);
    d.apply({ type: "event", at: 1, name: "paid", payload: encodeValue("early") });
    const branches = dispatched(d.apply({ type: "taskFinished", at: 2, step: dispatched(first)[0].step, outcome: value(1) }));
    for (const x of branches) d.apply({ type: "taskFinished", at: 3, step: x.step, outcome: value(0) });
    expect(d.machine.runState).toBe(RunState.RUNNING);
    const effects = d.apply({ type: "event", at: 4, name: "paid", payload: encodeValue("late") });
    expect(effects.filter((e) => e.type === "eventWait").map((e) => (e as { on: boolean }).on)).toEqual([false, false]);
    expect(d.machine.runState).toBe(RunState.SUCCEEDED);
    expect(decodeValue((d.machine.result!.outcome as { value: Value }).value)).toEqual(["late", "late"]);
  });
});

describe("replay", () => {
  it("replaying the logged inputs rebuilds the same steps and the same next wake", () => {
    const p = a.send(1).sleep(1000).waitForSignal("go", { timeoutMs: 10_000 }).continueWith(b);
    const { d, first } = start(p);
    d.apply({ type: "taskFinished", at: 10, step: dispatched(first)[0].step, outcome: value(2) });
    d.apply({ type: "signal", at: 20, name: "go", payload: encodeValue("kept"), id: "x" });
    d.apply({ type: "wake", at: 1010 });
    const copy = new RunMachine(p.toProto());
    for (const input of d.inputs) copy.apply(input);
    expect(stepStatuses(copy.graph).steps).toEqual(stepStatuses(d.machine.graph).steps);
    expect(copy.nextWakeAt()).toBe(d.machine.nextWakeAt());
    expect(copy.runState).toBe(RunState.RUNNING);
  });
});
