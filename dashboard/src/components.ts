// Small pieces every view uses: state badges and the error line.
//
// The views are written with Preact's h() rather than JSX: dependency-cruiser (the import
// boundaries of `npm run lint:deps`) parses sources with swc, and the version that runs on
// Node 20 (17.x) cannot parse TSX; h() keeps every file checkable and every prop typed.

import { h } from "preact";
import { describeError } from "./api/api-error.js";

/** A state name in a coloured badge; `data-state` is what the browser test reads. */
export function StateBadge({ name, tone, title }: { name: string; tone: string; title?: string }) {
  return h("span", { class: `badge ${tone}`, "data-state": name, title }, name);
}

/** An error as the page shows it: "Token needed" for a 401, the server's message otherwise. */
export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return h("p", { class: "error-line", role: "alert" }, describeError(error));
}

/** The value of the input or select an event came from. */
export function valueOf(e: Event): string {
  return (e.currentTarget as HTMLInputElement | HTMLSelectElement).value;
}
