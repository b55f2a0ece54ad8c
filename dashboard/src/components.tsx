// Small pieces every view uses: state badges and the error line.

import { describeError } from "./api/api-error.js";

/** A state name in a coloured badge; `data-state` is what the browser test reads. */
export function StateBadge({ name, tone }: { name: string; tone: string }) {
  return (
    <span class={`badge ${tone}`} data-state={name}>
      {name}
    </span>
  );
}

/** An error as the page shows it: "Token needed" for a 401, the server's message otherwise. */
export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error-line" role="alert">
      {describeError(error)}
    </p>
  );
}
