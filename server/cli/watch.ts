// `pipewright watch RUN`: the run's tree of steps, live. On a terminal the
// tree is redrawn in place (at most ten times a second); otherwise (a pipe, a
// log file) one line per change. Ends when the run ends, with its exit code.

import { toJsonString } from "@bufbuild/protobuf";
import { RunEventSchema, RunState, RunView, type RunEvent } from "@pipewright/protocol";
import type { PipewrightClient } from "@pipewright/client";
import { exitCodeOf, outcomeLine, runDuration, runStateName } from "./output.js";
import { StepTree, stepLine } from "./step-tree.js";
import { optionalTimeMs } from "@pipewright/protocol";

export interface WatchOutput {
  write(text: string): void;
  /** A terminal: redraw in place. */
  isTTY: boolean;
  /** Terminal height, to keep the tree on screen. */
  rows?: number;
}

/** Watches until the run ends; returns the exit code of its outcome. */
export async function watchRun(client: PipewrightClient, runId: string, out: WatchOutput, json: boolean): Promise<number> {
  const { run } = await client.rpc.getRun({ runId, view: RunView.FULL });
  const tree = new StepTree(run!.steps);
  let state = run!.state;
  let header = { name: run!.name, create: run!.createTime, finish: run!.finishTime };
  let outcome = outcomeLine(run!);
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;

  const draw = () => {
    timer = undefined;
    const head = `run ${runId}${header.name ? ` (${header.name})` : ""}  ${runStateName(state)}  ${runDuration(header.create, header.finish)}`;
    let lines = [head, ...tree.lines()];
    if (state >= RunState.SUCCEEDED && outcome) lines.push(`${state === RunState.SUCCEEDED ? "result" : "error"}: ${outcome}`);
    const room = (out.rows ?? 40) - 1;
    if (lines.length > room) lines = [...lines.slice(0, room - 1), `… ${lines.length - room + 1} more lines`];
    // Back to where the last drawing started, clear below, draw again.
    out.write(`${drawn ? `\x1b[${drawn}A\r\x1b[0J` : ""}${lines.join("\n")}\n`);
    drawn = lines.length;
  };
  const redraw = () => {
    if (!timer) timer = setTimeout(draw, 100);
  };

  if (out.isTTY && !json) draw();
  else if (!json) out.write(`run ${runId}${header.name ? ` (${header.name})` : ""}\n`);

  // Every event, the history (seq 0 included) then live changes: one line each off a
  // terminal (or one JSON object each with -o json), the tree redrawn on one.
  const onEvent = (e: RunEvent) => {
    if (json) out.write(`${toJsonString(RunEventSchema, e)}\n`);
    if (e.kind.case === "step") {
      tree.update(e.kind.value);
      if (out.isTTY && !json) redraw();
      else if (!json) out.write(`${time(e)} ${e.kind.value.path}  ${stepLine(tree.steps.get(e.kind.value.stepId)!)}\n`);
    } else if (e.kind.case === "run") {
      state = e.kind.value.state;
      if (e.kind.value.outcome) outcome = outcomeLine({ outcome: e.kind.value.outcome } as never);
      if (!out.isTTY && !json) out.write(`${time(e)} run ${runStateName(state)}${state >= RunState.SUCCEEDED && outcome ? `: ${outcome}` : ""}\n`);
    }
  };
  if (state >= RunState.SUCCEEDED && out.isTTY && !json) return exitCodeOf(state);
  for await (const { event } of client.rpc.watchRun({ runId })) {
    onEvent(event!); // the server ends the stream after the run's end
  }
  if (out.isTTY && !json) {
    clearTimeout(timer);
    const { run: done } = await client.rpc.getRun({ runId });
    header = { name: done!.name, create: done!.createTime, finish: done!.finishTime };
    draw();
  }
  return exitCodeOf(state);
}

function time(e: RunEvent): string {
  const at = new Date(optionalTimeMs(e.time) ?? Date.now());
  return at.toISOString().slice(11, 23);
}
