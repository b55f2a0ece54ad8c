// A run kept live: GetRun (full view) for the first picture, then WatchRun's events. The watch
// replays the run's history from the start, so steps a truncated full view left out
// (steps_truncated) arrive too; replaying an event already applied is harmless because each
// step event carries the step's whole status.
//
// Events come in bursts (a 10,000-branch group sends tens of thousands): they are applied to a
// Map at once and the page re-renders at most every RENDER_EVERY_MS, not once per event.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Run, StepStatus } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { RunView } from "../../../proto/gen/pipewright/v1/run_service_pb.js";
import { callStream, callUnary } from "../api/gateway.js";
import type { Connection } from "../api/connection.js";
import { rpc } from "../api/rpc.js";
import { isFinished } from "../format/states.js";
import { mergeStep } from "./step-tree-model.js";

const RENDER_EVERY_MS = 150;
/** Wait before watching again after the stream broke while the run was still going. */
const REWATCH_DELAY_MS = 1000;

export interface LiveRun {
  run: Run | undefined;
  steps: Map<number, StepStatus>;
  /** Bumped on every applied batch, so views memoised on it recompute. */
  version: number;
  error: unknown;
  /** Replace the run after an action (cancel, pause, resume answer the run). */
  setRun: (run: Run) => void;
}

export function useRunWatch(connection: Connection, runId: string): LiveRun {
  const [run, setRunState] = useState<Run>();
  const [steps] = useState(() => new Map<number, StepStatus>());
  const [version, setVersion] = useState(0);
  const [error, setError] = useState<unknown>();
  // The run as last known, from the reads, the events and the actions' answers alike: one
  // object, so an action's answer and a later event never show two different states.
  const known = useRef<Run | undefined>(undefined);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    let renderTimer: ReturnType<typeof setTimeout> | undefined;
    const scheduleRender = () => {
      renderTimer ??= setTimeout(() => {
        renderTimer = undefined;
        if (known.current) setRunState({ ...known.current } as Run);
        setVersion((v) => v + 1);
      }, RENDER_EVERY_MS);
    };

    const follow = async () => {
      const { run: first } = await callUnary(connection, rpc.getRun, { runId, view: RunView.FULL }, signal);
      if (!first) return;
      known.current = first;
      for (const s of first.steps) steps.set(s.stepId, s);
      first.steps = [];
      setRunState({ ...first } as Run);
      setVersion((v) => v + 1);
      let afterSeq = 0n;
      // A finished run needs no watch, unless its full view left steps out.
      let watchOnce = first.stepsTruncated;
      let watched = false;
      while (!signal.aborted && known.current && (watchOnce || !isFinished(known.current.state))) {
        watchOnce = false;
        watched = true;
        try {
          await callStream(
            connection,
            rpc.watchRun,
            { runId, afterSeq },
            ({ event }) => {
              if (!event || !known.current) return;
              // Events sharing a seq may be cut apart by a broken stream: resume one seq back.
              // Live-only events (progress) have seq 0 and do not move the position.
              if (event.seq > 0n) afterSeq = event.seq - 1n;
              if (event.kind.case === "step") {
                const s = event.kind.value;
                steps.set(s.stepId, mergeStep(steps.get(s.stepId), s));
              } else if (event.kind.case === "run") {
                known.current.state = event.kind.value.state;
                if (event.kind.value.outcome) known.current.outcome = event.kind.value.outcome;
                if (isFinished(known.current.state) && event.time) known.current.finishTime = event.time;
              }
              scheduleRender();
            },
            signal,
          );
          setError(undefined);
        } catch (err) {
          if (signal.aborted) return;
          setError(err);
        }
        if (known.current && !isFinished(known.current.state)) await new Promise((r) => setTimeout(r, REWATCH_DELAY_MS));
      }
      // Finished while watched: the full view is final, and puts right anything the events left
      // out of order.
      if (watched && !signal.aborted && known.current && isFinished(known.current.state)) {
        const { run: last } = await callUnary(connection, rpc.getRun, { runId, view: RunView.FULL }, signal);
        if (last && !last.stepsTruncated) {
          for (const s of last.steps) steps.set(s.stepId, s);
          last.steps = [];
          known.current = last;
          scheduleRender();
        }
      }
    };
    follow().catch((err: unknown) => {
      if (!signal.aborted) setError(err);
    });
    return () => {
      controller.abort();
      clearTimeout(renderTimer);
    };
  }, [connection, runId]);

  return {
    run,
    steps,
    version,
    error,
    // An action's answer has no steps: the watched ones stay in `steps`. A late answer
    // (CANCELLING) does not take back a state the events already finished (CANCELLED).
    setRun: (next) => {
      if (known.current && isFinished(known.current.state) && !isFinished(next.state)) return;
      known.current = { ...next, steps: [] } as Run;
      setRunState({ ...known.current } as Run);
    },
  };
}
