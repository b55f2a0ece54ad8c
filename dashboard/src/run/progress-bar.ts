// A running task's progress (Heartbeat progress): a bar when the value says how far
// (a fraction, {done, total}, {percent}), the value as text otherwise.

import { h } from "preact";
import type { Value } from "../../../proto/gen/pipewright/v1/value_pb.js";
import { plainValue, progressFraction, valueText } from "../format/values.js";

export function ProgressBar({ value }: { value: Value }) {
  const fraction = progressFraction(value);
  if (fraction === undefined) return h("span", { class: "progress-text" }, valueText(value, 60));
  const p = plainValue(value) as { done?: unknown; total?: unknown } | number;
  const counts = typeof p === "object" && typeof p.done === "number" && typeof p.total === "number" ? ` ${p.done}/${p.total}` : "";
  return h("span", { class: "progress", title: valueText(value, 200) }, h("progress", { max: 1, value: fraction }), ` ${Math.round(fraction * 100)}%${counts}`);
}
