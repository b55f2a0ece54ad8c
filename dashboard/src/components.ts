// Small pieces every view uses: state badges and the error line.
//
// The views are written with Preact's h() rather than JSX: dependency-cruiser (the import
// boundaries of `npm run lint:deps`) parses sources with swc, and the version that runs on
// Node 20 (17.x) cannot parse TSX; h() keeps every file checkable and every prop typed.

import { h, type ComponentChildren } from "preact";
import { ApiError, describeError } from "./api/api-error.js";

/** A state name in a coloured badge; `data-state` is what the browser test reads. */
export function StateBadge({ name, tone, title }: { name: string; tone: string; title?: string }) {
  return h("span", { class: `badge ${tone}`, "data-state": name, title }, name);
}

/** An error as the page shows it: "Token needed" for a 401, the server's message otherwise. */
export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return h("p", { class: "error-line", role: "alert" }, describeError(error));
}

/**
 * A refusal said in the page's words: a 403 names the scope the action needs, with the
 * server's own message after it; anything else as ErrorLine shows it.
 */
export function RefusalLine({ error, scope, what }: { error: unknown; scope: string; what: string }) {
  if (error === undefined || error === null) return null;
  const text =
    error instanceof ApiError && error.permissionDenied
      ? `${what} needs a token with the ${scope} scope. The server said: ${error.message}`
      : describeError(error);
  return h("p", { class: "error-line", role: "alert" }, text);
}

/** A table with a heading row; `cls` names it for the styles and the browser tests. */
export function DataTable({ cls, headings, children }: { cls: string; headings: string[]; children?: ComponentChildren }) {
  return h(
    "table",
    { class: cls },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headings.map((t) => h("th", null, t)),
      ),
    ),
    h("tbody", null, children),
  );
}

/** Previous / page n / Next over keyset page tokens (`tokens[i]` is page i's; the first is ""). */
export function Pager({ tokens, next, onChange }: { tokens: string[]; next: string; onChange: (tokens: string[]) => void }) {
  const page = tokens.length - 1;
  return h(
    "div",
    { class: "pager" },
    h("button", { type: "button", name: "previous", disabled: page === 0, onClick: () => onChange(tokens.slice(0, -1)) }, "Previous"),
    h("span", null, `page ${page + 1}`),
    h("button", { type: "button", name: "next", disabled: !next, onClick: () => onChange([...tokens, next]) }, "Next"),
  );
}

/** The value of the input or select an event came from. */
export function valueOf(e: Event): string {
  return (e.currentTarget as HTMLInputElement | HTMLSelectElement).value;
}
