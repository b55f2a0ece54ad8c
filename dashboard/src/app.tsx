// The page: header (navigation, token, namespace) and the view the hash names.

import { useState } from "preact/hooks";
import { loadConnection, saveConnection, type Connection } from "./api/connection.js";
import { ConnectionBar } from "./connection-bar.js";
import { ConnectionContext } from "./connection-context.js";
import { RunPage } from "./run/run-page.js";
import { RunsPage } from "./runs/runs-page.js";
import { useRoute } from "./use-route.js";
import { WorkersPage } from "./workers/workers-page.js";

export function App() {
  const route = useRoute();
  const [connection, setConnection] = useState<Connection>(loadConnection);
  const change = (c: Connection) => {
    saveConnection(c);
    setConnection(c);
  };
  return (
    <ConnectionContext.Provider value={connection}>
      <header>
        <strong class="brand">Pipewright</strong>
        <nav>
          <a href="#/runs" class={route.view !== "workers" ? "current" : ""}>
            Runs
          </a>
          <a href="#/workers" class={route.view === "workers" ? "current" : ""}>
            Workers
          </a>
        </nav>
        <ConnectionBar connection={connection} onChange={change} />
      </header>
      <main>
        {route.view === "run" ? (
          <RunPage key={`${route.runId} ${connection.token} ${connection.namespace}`} runId={route.runId} />
        ) : route.view === "workers" ? (
          <WorkersPage />
        ) : (
          <RunsPage />
        )}
      </main>
    </ConnectionContext.Provider>
  );
}
