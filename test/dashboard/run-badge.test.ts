// The dashboard's run badge (dashboard/src/format/states.ts): a running run whose delayed
// start is still ahead reads SCHEDULED, with when it starts; otherwise the run's state.

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { runBadge } from "../../dashboard/src/format/states.js";
import { RunSchema, RunState } from "../../proto/gen/pipewright/v1/run_pb.js";

const now = Date.parse("2026-11-30T10:00:00Z");

describe("runBadge", () => {
  it("says SCHEDULED for a running run whose start is ahead, with its start time", () => {
    const run = create(RunSchema, { state: RunState.RUNNING, startTime: timestampFromMs(now + 60_000) });
    expect(runBadge(run, now)).toEqual({ name: "SCHEDULED", tone: "warn", title: "starts at 2026-11-30T10:01:00.000Z" });
  });

  it("says the state once the start has passed, for a run without a start time, and for a run that ended before it", () => {
    expect(runBadge(create(RunSchema, { state: RunState.RUNNING, startTime: timestampFromMs(now - 1) }), now).name).toBe("RUNNING");
    expect(runBadge(create(RunSchema, { state: RunState.RUNNING }), now).name).toBe("RUNNING");
    expect(runBadge(create(RunSchema, { state: RunState.CANCELLED, startTime: timestampFromMs(now + 60_000) }), now)).toEqual({
      name: "CANCELLED",
      tone: "muted",
    });
  });
});
