// The page: header (navigation, token, namespace) and the view the hash names.

import { h } from "preact";
import { useState } from "preact/hooks";
import { loadConnection, saveConnection, type Connection } from "./api/connection.js";
import { ConnectionBar } from "./connection-bar.js";
import { ConnectionContext } from "./connection-context.js";
import { RunPage } from "./run/run-page.js";
import { RunsPage } from "./runs/runs-page.js";
import { EventsPage } from "./events/events-page.js";
import { SchedulePage } from "./schedules/schedule-page.js";
import { SchedulesPage } from "./schedules/schedules-page.js";
import { useRoute, type Route } from "./use-route.js";
import { WorkersPage } from "./workers/workers-page.js";

export function App() {
  const route = useRoute();
  const [connection, setConnection] = useState<Connection>(loadConnection);
  const change = (c: Connection) => {
    saveConnection(c);
    setConnection(c);
  };
  return h(
    ConnectionContext.Provider,
    { value: connection },
    h(
      "header",
      null,
      h("strong", { class: "brand" }, "Pipewright"),
      h(
        "nav",
        null,
        navLink("#/runs", "Runs", route.view === "runs" || route.view === "run"),
        navLink("#/schedules", "Schedules", route.view === "schedules" || route.view === "schedule"),
        navLink("#/events", "Events", route.view === "events"),
        navLink("#/workers", "Workers", route.view === "workers"),
      ),
      h(ConnectionBar, { connection, onChange: change }),
    ),
    h("main", null, view(route, connection)),
  );
}

function navLink(href: string, label: string, current: boolean) {
  return h("a", { href, class: current ? "current" : "" }, label);
}

function view(route: Route, connection: Connection) {
  switch (route.view) {
    case "run":
      // Keyed by what it watches with: a new token or namespace starts a new watch.
      return h(RunPage, { key: `${route.runId} ${connection.token} ${connection.namespace}`, runId: route.runId });
    case "workers":
      return h(WorkersPage, null);
    case "runs":
      return h(RunsPage, null);
    case "schedules":
      return h(SchedulesPage, null);
    case "schedule":
      return h(SchedulePage, { key: `${route.scheduleId} ${connection.token} ${connection.namespace}`, scheduleId: route.scheduleId });
    case "events":
      return h(EventsPage, null);
  }
}
