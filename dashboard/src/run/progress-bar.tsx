// A running task's progress (Heartbeat progress): a bar when the value says how far
// (a fraction, {done, total}, {percent}), the value as text otherwise.

import type { Value } from "../../../proto/gen/pipewright/v1/value_pb.js";
import { progressFraction, plainValue, valueText } from "../format/values.js";

export function ProgressBar({ value }: { value: Value }) {
  const fraction = progressFraction(value);
  if (fraction === undefined) return <span class="progress-text">{valueText(value, 60)}</span>;
  const p = plainValue(value) as { done?: unknown; total?: unknown } | number;
  const counts = typeof p === "object" && typeof p.done === "number" && typeof p.total === "number" ? ` ${p.done}/${p.total}` : "";
  return (
    <span class="progress" title={valueText(value, 200)}>
      <progress max={1} value={fraction} /> {Math.round(fraction * 100)}%{counts}
    </span>
  );
}
