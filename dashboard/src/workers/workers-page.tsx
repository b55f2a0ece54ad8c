// Connected workers and circuit breakers (AdminService): both need a token with the admin
// scope, and the page says so plainly when the server refuses.

import { ApiError, describeError } from "../api/api-error.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { StateBadge } from "../components.js";
import { useConnection } from "../connection-context.js";
import { formatTime } from "../format/durations.js";
import { CircuitState, WorkerSessionState } from "../../../proto/gen/pipewright/v1/admin_service_pb.js";
import { usePoll } from "../use-poll.js";

export function WorkersPage() {
  const connection = useConnection();
  const workers = usePoll((signal) => callUnary(connection, rpc.listWorkers, {}, signal), [connection]);
  const breakers = usePoll((signal) => callUnary(connection, rpc.listCircuitBreakers, {}, signal), [connection]);
  return (
    <section class="workers-page">
      <h1>Workers</h1>
      <p class="note">The workers connected to the server process that answers.</p>
      <AdminError error={workers.error} />
      <table class="workers">
        <thead>
          <tr>
            <th>Name</th>
            <th>Namespace</th>
            <th>Tasks</th>
            <th>Queues</th>
            <th>Slots used</th>
            <th>State</th>
            <th>Connected</th>
          </tr>
        </thead>
        <tbody>
          {(workers.data?.workers ?? []).map((w) => (
            <tr key={w.workerId} data-worker-id={w.workerId}>
              <td>{w.name || w.workerId.slice(0, 8)}</td>
              <td>{w.namespace || "default"}</td>
              <td>{w.taskNames.join(", ")}</td>
              <td>{w.queues.map((q) => q || "(default)").join(", ")}</td>
              <td>
                {w.slotsUsed} / {w.slots}
              </td>
              <td>
                <StateBadge name={WorkerSessionState[w.state] ?? "?"} tone={w.state === WorkerSessionState.ACTIVE ? "ok" : "warn"} />
              </td>
              <td>{formatTime(w.connectTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {workers.data && workers.data.workers.length === 0 ? <p class="empty">No worker is connected.</p> : null}
      <h2>Circuit breakers</h2>
      <AdminError error={breakers.error} />
      <table class="breakers">
        <thead>
          <tr>
            <th>Task</th>
            <th>Namespace</th>
            <th>State</th>
            <th>Failures in a row</th>
            <th>Opened</th>
            <th>Probe at</th>
          </tr>
        </thead>
        <tbody>
          {(breakers.data?.breakers ?? []).map((b) => (
            <tr key={`${b.namespace}/${b.task}`}>
              <td>{b.task}</td>
              <td>{b.namespace || "default"}</td>
              <td>
                <StateBadge
                  name={CircuitState[b.state] ?? "?"}
                  tone={b.state === CircuitState.OPEN ? "bad" : b.state === CircuitState.HALF_OPEN ? "warn" : "ok"}
                />
              </td>
              <td>{b.consecutiveFailures}</td>
              <td>{formatTime(b.openedTime)}</td>
              <td>{formatTime(b.probeTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {breakers.data && breakers.data.breakers.length === 0 ? <p class="empty">No circuit breaker has tripped or counted a failure.</p> : null}
    </section>
  );
}

/** A refusal of the admin methods, said in the page's words. */
function AdminError({ error }: { error: unknown }) {
  if (error === undefined) return null;
  const text =
    error instanceof ApiError && error.permissionDenied
      ? `This view needs a token with the admin scope. The server said: ${error.message}`
      : describeError(error);
  return (
    <p class="error-line" role="alert">
      {text}
    </p>
  );
}
