// A step's or a run's error: type, message, where it was raised, the stack, and for an
// aggregate error the causes (each failed branch), a few shown and the rest counted.

import { h, type JSX } from "preact";
import type { TaskError } from "../../../proto/gen/pipewright/v1/value_pb.js";
import { valueText } from "../format/values.js";

const SHOWN_CAUSES = 10;

export function ErrorView({ error }: { error: TaskError }): JSX.Element {
  const causes = error.causes;
  return h(
    "div",
    { class: "task-error", "data-error-type": error.type },
    h(
      "div",
      null,
      h("span", { class: "error-type" }, error.type || "Error"),
      ": ",
      h("span", { class: "error-message" }, error.message),
      error.terminal ? h("span", { class: "tag" }, "terminal") : null,
    ),
    error.origin ? h("div", { class: "origin" }, `at ${error.origin}`) : null,
    error.details ? h("div", { class: "details" }, `details: ${valueText(error.details)}`) : null,
    error.stack ? h("pre", { class: "stack" }, error.stack) : null,
    causes.length
      ? h(
          "details",
          { class: "causes" },
          h("summary", null, `${causes.length.toLocaleString("en")} cause${causes.length === 1 ? "" : "s"}`),
          causes.slice(0, SHOWN_CAUSES).map((c) => h(ErrorView, { error: c })),
          causes.length > SHOWN_CAUSES ? h("p", { class: "more" }, `… and ${causes.length - SHOWN_CAUSES} more (see the failed steps)`) : null,
        )
      : null,
  );
}
