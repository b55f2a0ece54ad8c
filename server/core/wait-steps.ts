// Wait steps of a run (Step.wait): a sleep ends at its time and passes the
// flow on; a signal or event wait ends with what arrived (its payload is the
// step's result) or times out with pipewright.Timeout. A signal sent before
// its wait is reached is kept for it; an event is not. The bookkeeping (who
// waits for what, until when, and the kept signals) is waits.ts; this is what
// a wait's start and end mean for the pipeline.

import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { TaskError, Value } from "@pipewright/protocol";
import { isCancellation } from "./flows.js";
import type { RunInput, SignalOutcome } from "./machine-types.js";
import type { Flow, WaitStep } from "./run-graph.js";
import type { StepContext } from "./step-context.js";
import { serverError } from "./values.js";
import type { Waits } from "./waits.js";

export class WaitSteps {
  constructor(
    private readonly m: StepContext,
    private readonly waits: Waits,
  ) {}

  /** The pipeline reached a wait step. */
  start(step: WaitStep, flow: Flow): void {
    step.input = flow;
    this.m.mark(step, "waiting");
    const c = step.spec.condition;
    switch (c.case) {
      case "duration":
      case "time": {
        const at = c.case === "duration" ? this.m.now + durationMs(c.value) : timestampMs(c.value);
        if (at <= this.m.now) this.m.later(() => this.settle(step, flow));
        else this.wait(step, "sleep", "", at);
        return;
      }
      case "signal": {
        const kept = this.waits.takeKept(c.value);
        if (kept) this.m.later(() => this.settle(step, { args: [kept], kwargs: {}, state: flow.state }));
        else this.wait(step, "signal", c.value, this.timeoutOf(step));
        return;
      }
      case "event":
        this.wait(step, "event", c.value, this.timeoutOf(step));
        this.m.emit({ type: "eventWait", step: step.id, name: c.value, on: true });
        return;
      default:
        throw new Error(`unvalidated wait at ${this.m.graph.pathOf(step)}: no condition`);
    }
  }

  /** Time passed (a "wake" input): every wait whose time has come ends or times out. */
  wake(at: number): void {
    for (const id of this.waits.due(at)) this.timeCame(this.m.graph.step(id) as WaitStep);
  }

  /** A signal: ends the wait for its name that began first, or is kept; a repeated id does nothing. */
  signal(input: Extract<RunInput, { type: "signal" }>): SignalOutcome {
    if (input.id !== undefined && !this.waits.firstSight(input.id)) return "duplicate";
    const waiting = this.waits.firstWaitingFor(input.name);
    if (waiting === undefined) {
      this.waits.keep(input.name, input.payload);
      return "kept";
    }
    this.end(this.m.graph.step(waiting) as WaitStep, input.payload);
    return "delivered";
  }

  /** An event: ends every wait for its name. The same event delivered twice (its publisher retried) ends only the waits it found the first time. */
  event(input: Extract<RunInput, { type: "event" }>): void {
    if (input.id !== undefined && !this.waits.firstSight(`event:${input.id}`)) return;
    for (const id of this.waits.waitingForEvent(input.name)) this.end(this.m.graph.step(id) as WaitStep, input.payload);
  }

  /** The run stops (cancel, run timeout): every wait ends with `error`. */
  stopAll(error: TaskError): void {
    for (const id of [...this.waits.waiting]) {
      const step = this.m.graph.step(id) as WaitStep;
      this.unwait(step);
      this.m.later(() => this.settle(step, { error, args: [], kwargs: {}, state: step.input?.state }));
    }
  }

  /** The run ended: no wait goes on (event waits leave the publishers' index). */
  forget(): void {
    for (const id of this.waits.waiting) {
      const step = this.m.graph.step(id) as WaitStep;
      if (step.spec.condition.case === "event") this.m.emit({ type: "eventWait", step: id, name: step.spec.condition.value, on: false });
    }
    this.waits.clear();
  }

  private timeoutOf(step: WaitStep): number | undefined {
    const ms = step.spec.timeout ? durationMs(step.spec.timeout) : 0;
    return ms > 0 ? this.m.now + ms : undefined;
  }

  private wait(step: WaitStep, kind: "sleep" | "signal" | "event", name: string, wakeAt: number | undefined): void {
    step.wakeAt = wakeAt;
    this.waits.add(step.id, kind, name, wakeAt);
  }

  /** A wait stops waiting: out of the index, and out of the publishers' index for an event. */
  private unwait(step: WaitStep): void {
    this.waits.remove(step.id);
    step.wakeAt = undefined;
    if (step.spec.condition.case === "event") this.m.emit({ type: "eventWait", step: step.id, name: step.spec.condition.value, on: false });
  }

  /** A wait's time came: a sleep ends, a signal or event wait times out. */
  private timeCame(step: WaitStep): void {
    const c = step.spec.condition;
    const timeout = step.spec.timeout ? durationMs(step.spec.timeout) : 0;
    this.unwait(step);
    if (c.case === "duration" || c.case === "time") {
      this.m.later(() => this.settle(step, step.input!));
      return;
    }
    const error = serverError("Timeout", `waited more than ${timeout} ms for ${c.case} ${c.value}`, this.m.graph.pathOf(step));
    this.m.later(() => this.settle(step, { error, args: [], kwargs: {}, state: step.input?.state }));
  }

  /** A signal or event arrived for this wait: its payload is the step's result. */
  private end(step: WaitStep, payload: Value): void {
    this.unwait(step);
    this.m.later(() => this.settle(step, { args: [payload], kwargs: {}, state: step.input?.state }));
  }

  private settle(step: WaitStep, flow: Flow): void {
    step.error = flow.error;
    this.m.mark(step, flow.error ? (isCancellation(flow.error) ? "cancelled" : "failed") : "succeeded");
    this.m.runFrom(this.m.graph.scopes[step.scope], step.index + 1, flow);
  }
}
