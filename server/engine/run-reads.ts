// What clients read of runs: a run now (GetRun), a wait for its end (WaitRun,
// WaitRuns) and its events as they happen (WatchRun). A run held here is read
// from memory, but only what is committed: a wait ends once the batch that
// finished the run committed. A run held elsewhere is read from the database
// (its owner's announcement wakes waits here).

import { queueKey } from "@pipewright/protocol";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { RunEventSchema, RunState, type Run, type RunEvent, type Value } from "@pipewright/protocol";
import { pushAll } from "../core/arrays.js";
import { PipewrightError } from "../core/errors.js";
import type { TaskStep } from "../core/run-graph.js";
import type { MachineConfig, RunMachine } from "../core/run-machine.js";
import { stepStatusOf, stepStatuses, type LiveState } from "../core/step-statuses.js";
import type { Sql } from "../store/database.js";
import * as runs from "../store/run-store.js";
import * as queue from "../store/task-queue.js";
import type { OwnedRun } from "./owned-run.js";
import type { Peers } from "./peers.js";
import type { DispatchPort } from "./ports.js";
import { historyEvents, replay } from "./replay.js";
import type { RunRegistry } from "./run-registry.js";
import { runFromMachine, runFromRow } from "./run-views.js";
import { loadEvents } from "../store/run-events.js";
import type { Logger } from "../observe/logger.js";

export interface ReadsConfig {
  machine: MachineConfig;
  log: Logger;
}

export class RunReads {
  constructor(
    private readonly sql: Sql,
    private readonly registry: RunRegistry,
    private readonly peers: Peers,
    private readonly dispatch: Pick<DispatchPort, "serves" | "progressOf">,
    private readonly config: ReadsConfig,
    /** Resolves once every batch in flight has committed. */
    private readonly committed: () => Promise<void>,
  ) {}

  async getRun(uid: string, full: boolean): Promise<Run> {
    const recent = full ? undefined : this.registry.recent(uid);
    if (recent) return recent;
    const run = this.registry.held(uid);
    if (run && this.registry.busyElsewhere(run, undefined)) {
      // What is in memory is ahead of the database until the batch commits: show only what is committed.
      await this.committed();
      return this.getRun(uid, full);
    }
    if (run) {
      if (!full) return runFromMachine(run, run.machine);
      return runFromMachine(run, run.machine, stepStatuses(run.machine.graph, await this.liveState(run.id, run.namespace)));
    }
    const row = await runs.loadRunByUid(this.sql, uid);
    if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
    if (!full) return runFromRow(row);
    const events = await loadEvents(this.sql, [row.id]);
    let machine: RunMachine;
    try {
      machine = replay(row, events, this.config.machine);
    } catch (err) {
      this.config.log.error({ run_id: row.uid, err }, `run ${row.uid}: its steps cannot be shown, its log does not replay: ${(err as Error).message}`);
      return runFromRow(row); // the row is authoritative: the run as stored, without its steps
    }
    return runFromRow(row, stepStatuses(machine.graph, await this.liveState(row.id, row.namespace)));
  }

  /** What the database and the dispatcher know of a run's tasks now: which run, their progress, which no worker serves. */
  private async liveState(runId: number, namespace: string): Promise<LiveState> {
    return {
      running: new Set(await queue.runningSteps(this.sql, runId)),
      progress: this.dispatch.progressOf(runId),
      waitingReason: (step) => this.waitingReason(step, namespace),
    };
  }

  /** Why a queued task is not running yet, when no worker anywhere serves it. */
  private waitingReason(step: TaskStep, namespace: string): string | undefined {
    const q = step.call.options?.queue || "";
    if (this.dispatch.serves(step.call.task, queueKey(namespace, q))) return undefined;
    return `no connected worker serves task ${JSON.stringify(step.call.task)}${q && q !== "default" ? ` on queue ${JSON.stringify(q)}` : ""}`;
  }

  /** The steps of a run held here that a worker holds now, as step events (seq 0), with their progress. */
  private async runningNow(run: OwnedRun): Promise<RunEvent[]> {
    const live = await this.liveState(run.id, run.namespace);
    const time = timestampFromMs(Date.now());
    return [...live.running]
      .filter((step) => run.machine.graph.steps[step])
      .map((step) => create(RunEventSchema, { runId: run.uid, seq: 0n, time, kind: { case: "step", value: stepStatusOf(run.machine.graph, step, live) } }));
  }

  /**
   * A change of a running task only this process sees (nothing is stored for
   * it), for the run's watchers: an attempt handed to a worker, the progress
   * its task reports.
   */
  liveStepEvent(runId: number, step: number, progress?: Value): void {
    const run = this.registry.byId(runId);
    if (!run || run.listeners.size === 0 || !run.machine.graph.steps[step]) return;
    const status = stepStatusOf(run.machine.graph, step, { running: new Set([step]), progress: progress ? new Map([[step, progress]]) : undefined });
    // seq 0: not an event of the log (see WatchRunRequest.after_seq).
    const event = create(RunEventSchema, { runId: run.uid, seq: 0n, time: timestampFromMs(Date.now()), kind: { case: "step", value: status } });
    // A batch of the run is being committed (the one that queued this attempt, say): its events
    // go to watchers first, when it commits (commit-loop.ts), then this one.
    if (run.committedSeq < run.nextSeq - 1) (run.heldLive ??= []).push(event);
    else for (const l of run.listeners) l([event]);
  }

  /** Resolves once no batch of the run is being built or committed (at most ~1 s: a busy run is not waited for forever). */
  private async uncommittedSettled(run: OwnedRun, signal?: AbortSignal): Promise<void> {
    for (let waited = 0; run.committedSeq < run.nextSeq - 1 && waited < 1000 && !signal?.aborted; waited += 5) await new Promise((r) => setTimeout(r, 5));
  }

  /** Waits until the run finishes or `timeoutMs` passes; returns it either way. */
  async waitRun(uid: string, timeoutMs: number, signal?: AbortSignal): Promise<Run> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const recent = this.registry.recent(uid);
      if (recent) return recent;
      const run = this.registry.held(uid);
      // Held here: its waiters fire once the batch that finishes it commits
      // (even if it already finished in memory; the database may not say so yet).
      if (run) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return runFromMachine(run, run.machine);
        const finished = await new Promise<Run | undefined>((resolve) => {
          const done = (r: Run | undefined) => {
            clearTimeout(timer);
            run.waiters.delete(done);
            signal?.removeEventListener("abort", abort);
            resolve(r);
          };
          const abort = () => done(runFromMachine(run, run.machine));
          const timer = setTimeout(abort, remaining);
          signal?.addEventListener("abort", abort);
          run.waiters.add(done);
        });
        if (finished) return finished;
        continue; // the run moved to another process: follow it through the database
      }
      const row = await runs.loadRunByUid(this.sql, uid);
      if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
      if (row.state >= RunState.SUCCEEDED || Date.now() >= deadline || signal?.aborted) return runFromRow(row);
      // Owned by another process (or being reloaded here): look again once it announces the run finished.
      await this.peers.sleepOnRemote([uid], Math.min(this.peers.remoteWaitPollMs, deadline - Date.now()), signal);
    }
  }

  /**
   * Waits for several runs at once (the batch counterpart of waitRun): one
   * timer and one abort listener for all of them, waiters for the runs held
   * here, one query per look for the others. Returns them in order, finished
   * unless the timeout passed.
   */
  async waitRuns(uids: string[], timeoutMs: number, signal?: AbortSignal): Promise<Run[]> {
    const deadline = Date.now() + timeoutMs;
    // Filled, not sparse: every() skips the holes of `new Array(n)`, so "all finished" was true at once and callers spun.
    const out: (Run | undefined)[] = new Array(uids.length).fill(undefined);
    const attached = new Map<OwnedRun, (r: Run | undefined) => void>();
    let wake = () => {};
    // Woken once every run held here has reported (not at each one: that would rescan them all each time).
    let outstanding = 0;
    try {
      for (;;) {
        const elsewhere: number[] = [];
        for (let i = 0; i < uids.length; i++) {
          if (out[i]) continue;
          const recent = this.registry.recent(uids[i]);
          if (recent) {
            out[i] = recent;
            continue;
          }
          const run = this.registry.held(uids[i]);
          if (!run) {
            elsewhere.push(i);
            continue;
          }
          if (attached.has(run)) continue;
          const waiter = (r: Run | undefined) => {
            attached.delete(run);
            if (r) out[i] = r;
            if (--outstanding === 0 || !r) wake();
          };
          attached.set(run, waiter);
          outstanding++;
          run.waiters.add(waiter);
        }
        if (elsewhere.length) {
          const rows = await runs.loadRunsByUids(
            this.sql,
            elsewhere.map((i) => uids[i]),
          );
          const byUid = new Map(rows.map((r) => [r.uid, r]));
          for (const i of elsewhere) {
            const row = byUid.get(uids[i]);
            if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uids[i]}`);
            if (row.state >= RunState.SUCCEEDED) out[i] = runFromRow(row);
          }
        }
        if (out.every((r) => r) || Date.now() >= deadline || signal?.aborted) break;
        // Runs held elsewhere: woken by their owners' announcements (or the safety-net poll).
        const stillElsewhere = elsewhere.filter((i) => !out[i]).map((i) => uids[i]);
        const ms = Math.min(deadline - Date.now(), stillElsewhere.length ? this.peers.remoteWaitPollMs : 60_000);
        await this.peers.sleepOnRemote(stillElsewhere, ms, signal, (w) => (wake = w));
      }
    } finally {
      for (const [run, waiter] of attached) run.waiters.delete(waiter);
    }
    // Not finished in time: their current state.
    const missing = uids.flatMap((uid, i) => (out[i] ? [] : [uid]));
    if (missing.length) {
      const rows = new Map((await runs.loadRunsByUids(this.sql, missing)).map((r) => [r.uid, r]));
      uids.forEach((uid, i) => {
        if (out[i]) return;
        const run = this.registry.held(uid);
        out[i] = run ? runFromMachine(run, run.machine) : runFromRow(rows.get(uid)!);
      });
    }
    return out as Run[];
  }

  /**
   * The run's events: history (replayed from the log) then live changes,
   * ending once the run has finished.
   */
  async *watch(uid: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<RunEvent> {
    const buffered: RunEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (events: RunEvent[]) => {
      pushAll(buffered, events);
      wake?.();
    };
    const subscribe = () => {
      const run = this.registry.held(uid);
      run?.listeners.add(listener);
      return run;
    };
    let run = subscribe();
    try {
      const row = await runs.loadRunByUid(this.sql, uid);
      if (!row) throw new PipewrightError("NOT_FOUND", `no run with id ${uid}`);
      const stored = await loadEvents(this.sql, [row.id]);
      let last = afterSeq;
      for (const e of historyEvents(row, stored, this.config.machine)) {
        // after_seq 0 (unset) is the whole history: the start's events (seq 0) too.
        if (Number(e.seq) > afterSeq || afterSeq === 0) yield e;
        last = Math.max(last, Number(e.seq));
      }
      if (row.state >= RunState.SUCCEEDED) return;
      run ??= subscribe();
      // What runs right now, with its progress: the log cannot say (a task handed to a worker is
      // not an event of it). The snapshot must come after every logged event it reflects, or a
      // watcher sees a step running before the "queued" that led to it, or running again after
      // the history finished it. So: wait until no batch of the run is being committed, send the
      // logged events heard meanwhile, take the snapshot, and take it again if more were logged
      // while it was read. Live events (seq 0) heard before it are older than it: dropped.
      for (let tries = 0; run && tries < 5; tries++) {
        await this.uncommittedSettled(run, signal);
        for (const e of takeLogged(buffered, last)) {
          yield e;
          last = Math.max(last, Number(e.seq));
          if (e.kind.case === "run" && e.kind.value.state >= RunState.SUCCEEDED) return;
        }
        const heardBefore = buffered.length;
        const now = await this.runningNow(run);
        if (buffered.slice(heardBefore).some((e) => e.seq !== 0n) || run.committedSeq < run.nextSeq - 1) continue; // moved on meanwhile
        dropLiveEvents(buffered, heardBefore);
        for (const e of now) yield e;
        break;
      }
      for (;;) {
        while (buffered.length) {
          const e = buffered.shift()!;
          if (Number(e.seq) <= last && e.seq !== 0n) continue;
          yield e;
          if (e.kind.case === "run" && e.kind.value.state >= RunState.SUCCEEDED) return;
        }
        if (signal?.aborted) return;
        if (!run || !this.registry.byId(run.id)) {
          // Not (or no longer) in this process's memory: follow it through its row.
          const r = await runs.loadRunByUid(this.sql, uid);
          if (!r || r.state >= RunState.SUCCEEDED) {
            if (r)
              yield create(RunEventSchema, {
                runId: uid,
                seq: BigInt(last + 1),
                kind: { case: "run", value: { state: r.state as RunState, outcome: runFromRow(r).outcome } },
              });
            return;
          }
          run = subscribe();
          if (!run) await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        // One listener per wait, removed after it: a watch lasting hours must not pile them up on its signal.
        let stop = () => {};
        await new Promise<void>((resolve) => {
          wake = resolve;
          const t = setTimeout(resolve, 1000);
          t.unref();
          const aborted = () => resolve();
          signal?.addEventListener("abort", aborted, { once: true });
          stop = () => {
            clearTimeout(t);
            signal?.removeEventListener("abort", aborted);
          };
        });
        stop();
        wake = undefined;
      }
    } finally {
      run?.listeners.delete(listener);
    }
  }
}

/** Removes the live step events (seq 0) among the first `count` buffered events; the logged ones stay, in order. */
function dropLiveEvents(buffered: RunEvent[], count: number): void {
  const rest = buffered.splice(count);
  const kept = buffered.filter((e) => e.seq !== 0n);
  buffered.length = 0;
  pushAll(buffered, kept);
  pushAll(buffered, rest);
}

/** Takes the logged events (seq > 0) out of `buffered`, those after `last`, in order; live ones (seq 0) stay. */
function takeLogged(buffered: RunEvent[], last: number): RunEvent[] {
  const logged = buffered.filter((e) => e.seq !== 0n && Number(e.seq) > last);
  const live = buffered.filter((e) => e.seq === 0n);
  buffered.length = 0;
  pushAll(buffered, live);
  return logged;
}
