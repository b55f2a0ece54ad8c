// Hash routing: `#/runs`, `#/runs/<id>`, `#/workers`. The server then serves only index.html
// and /assets/*, whatever view is open, and a reload keeps the view.

import { useEffect, useState } from "preact/hooks";

export type Route = { view: "runs" } | { view: "run"; runId: string } | { view: "workers" };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "runs" && parts[1]) return { view: "run", runId: parts[1] };
  if (parts[0] === "workers") return { view: "workers" };
  return { view: "runs" };
}

export function runHref(runId: string): string {
  return `#/runs/${encodeURIComponent(runId)}`;
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
