// Small pure pieces of the schedules, events and signal views: the routes, the signal a wait
// step waits for, the payload parsed (or refused) before any call, a trigger's filter in words.

import { describe, expect, it } from "vitest";
import { filterSummary } from "../../dashboard/src/events/events-page.js";
import { parsePayload, signalNameOf } from "../../dashboard/src/run/signal-form.js";
import { parseRoute, scheduleHref } from "../../dashboard/src/use-route.js";

describe("the dashboard's routes", () => {
  it("reads the schedules, schedule and events views, and an id with a slash survives the round trip", () => {
    expect(parseRoute("#/schedules")).toEqual({ view: "schedules" });
    expect(parseRoute("#/events")).toEqual({ view: "events" });
    expect(parseRoute(scheduleHref("nightly/eu"))).toEqual({ view: "schedule", scheduleId: "nightly/eu" });
    expect(parseRoute("#/nowhere")).toEqual({ view: "runs" });
  });
});

describe("the signal form's pieces", () => {
  it("takes the signal name from waiting_for, and only for signal waits", () => {
    expect(signalNameOf("signal approve")).toBe("approve");
    expect(signalNameOf("event order.paid")).toBeUndefined();
    expect(signalNameOf("sleep")).toBeUndefined();
  });
  it("encodes JSON compactly, sends nothing for empty text, and refuses what is not JSON", () => {
    expect(new TextDecoder().decode(parsePayload(' { "a" : [1, 2] } ').data)).toBe('{"a":[1,2]}');
    expect(parsePayload("  ")).toEqual({});
    const bad = parsePayload("{approved: yes");
    expect([bad.data, bad.error]).toEqual([undefined, expect.stringMatching(/^The payload is not JSON/)]);
  });
});

describe("a trigger's filter in words", () => {
  it("joins the conditions, and says when there is none", () => {
    expect(filterSummary([])).toBe("every event");
    expect(
      filterSummary([
        { path: "region", equals: '"eu"' },
        { path: "", equals: "3" },
      ] as never),
    ).toBe('region = "eu" and (payload) = 3');
  });
});
