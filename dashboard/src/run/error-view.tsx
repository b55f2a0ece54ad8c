// A step's or a run's error: type, message, where it was raised, the stack, and for an
// aggregate error the causes (each failed branch), a few shown and the rest counted.

import type { TaskError } from "../../../proto/gen/pipewright/v1/value_pb.js";
import { valueText } from "../format/values.js";

const SHOWN_CAUSES = 10;

export function ErrorView({ error }: { error: TaskError }) {
  return (
    <div class="task-error" data-error-type={error.type}>
      <div>
        <span class="error-type">{error.type || "Error"}</span>: <span class="error-message">{error.message}</span>
        {error.terminal ? <span class="tag">terminal</span> : null}
      </div>
      {error.origin ? <div class="origin">at {error.origin}</div> : null}
      {error.details ? <div class="details">details: {valueText(error.details)}</div> : null}
      {error.stack ? <pre class="stack">{error.stack}</pre> : null}
      {error.causes.length ? (
        <details class="causes">
          <summary>
            {error.causes.length.toLocaleString("en")} cause{error.causes.length === 1 ? "" : "s"}
          </summary>
          {error.causes.slice(0, SHOWN_CAUSES).map((c) => (
            <ErrorView error={c} />
          ))}
          {error.causes.length > SHOWN_CAUSES ? <p class="more">… and {error.causes.length - SHOWN_CAUSES} more (see the failed steps)</p> : null}
        </details>
      ) : null}
    </div>
  );
}
