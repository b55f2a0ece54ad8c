// Hash routing: `#/runs`, `#/runs/<id>`, `#/workers`, `#/schedules`, `#/schedules/<id>`, `#/events`. The server then serves only index.html
// and /assets/*, whatever view is open, and a reload keeps the view.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { view: "runs" }
  | { view: "run"; runId: string }
  | { view: "workers" }
  | { view: "schedules" }
  | { view: "schedule"; scheduleId: string }
  | { view: "events" };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "runs" && parts[1]) return { view: "run", runId: parts[1] };
  if (parts[0] === "workers") return { view: "workers" };
  if (parts[0] === "schedules") return parts[1] ? { view: "schedule", scheduleId: parts[1] } : { view: "schedules" };
  if (parts[0] === "events") return { view: "events" };
  return { view: "runs" };
}

export function runHref(runId: string): string {
  return `#/runs/${encodeURIComponent(runId)}`;
}

export function scheduleHref(scheduleId: string): string {
  return `#/schedules/${encodeURIComponent(scheduleId)}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
