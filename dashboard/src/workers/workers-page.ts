// Connected workers and circuit breakers (AdminService): both need a token with the admin
// scope, and the page says so plainly when the server refuses.

import { h } from "preact";
import { CircuitState, WorkerSessionState, type CircuitBreaker, type WorkerInfo } from "../../../proto/gen/pipewright/v1/admin_service_pb.js";
import { ApiError, describeError } from "../api/api-error.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { DataTable, StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { formatTime } from "../format/durations.js";
import { usePoll } from "../use-poll.js";

export function WorkersPage() {
  const connection = useConnection();
  const workers = usePoll((signal) => callUnary(connection, rpc.listWorkers, {}, signal), [connection]);
  const breakers = usePoll((signal) => callUnary(connection, rpc.listCircuitBreakers, {}, signal), [connection]);
  return h(
    "section",
    { class: "workers-page" },
    h("h1", null, "Workers"),
    h("p", { class: "note" }, "The workers connected to the server process that answers."),
    h(AdminError, { error: workers.error }),
    h(
      DataTable,
      { cls: "workers", headings: ["Name", "Namespace", "Tasks", "Queues", "Slots used", "State", "Connected"] },
      (workers.data?.workers ?? []).map(workerRow),
    ),
    workers.data && workers.data.workers.length === 0 ? h("p", { class: "empty" }, "No worker is connected.") : null,
    h("h2", null, "Circuit breakers"),
    h(AdminError, { error: breakers.error }),
    h(
      DataTable,
      { cls: "breakers", headings: ["Task", "Namespace", "State", "Failures in a row", "Opened", "Probe at"] },
      (breakers.data?.breakers ?? []).map(breakerRow),
    ),
    breakers.data && breakers.data.breakers.length === 0 ? h("p", { class: "empty" }, "No circuit breaker has counted a failure.") : null,
  );
}

function workerRow(w: WorkerInfo) {
  return h(
    "tr",
    { key: w.workerId, "data-worker-id": w.workerId },
    h("td", null, w.name || w.workerId.slice(0, 8)),
    h("td", null, w.namespace || "default"),
    h("td", null, w.taskNames.join(", ")),
    h("td", null, w.queues.map((q) => q || "(default)").join(", ")),
    h("td", null, `${w.slotsUsed} / ${w.slots}`),
    h("td", null, h(StateBadge, { name: WorkerSessionState[w.state] ?? "?", tone: w.state === WorkerSessionState.ACTIVE ? "ok" : "warn" })),
    h("td", null, formatTime(w.connectTime)),
  );
}

function breakerRow(b: CircuitBreaker) {
  const tone = b.state === CircuitState.OPEN ? "bad" : b.state === CircuitState.HALF_OPEN ? "warn" : "ok";
  return h(
    "tr",
    { key: `${b.namespace}/${b.task}` },
    h("td", null, b.task),
    h("td", null, b.namespace || "default"),
    h("td", null, h(StateBadge, { name: CircuitState[b.state] ?? "?", tone })),
    h("td", null, String(b.consecutiveFailures)),
    h("td", null, formatTime(b.openedTime)),
    h("td", null, formatTime(b.probeTime)),
  );
}

/** A refusal of the admin methods, said in the page's words. */
function AdminError({ error }: { error: unknown }) {
  if (error === undefined) return null;
  const text =
    error instanceof ApiError && error.permissionDenied
      ? `This view needs a token with the admin scope. The server said: ${error.message}`
      : describeError(error);
  return h("p", { class: "error-line", role: "alert" }, text);
}
