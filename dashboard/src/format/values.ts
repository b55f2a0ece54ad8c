// Values (opaque payloads) as text. The server never reads payloads; the dashboard decodes only
// JSON ones (encoding "" or "json"), the codec of the TypeScript and Python SDKs, and shows
// anything else by its encoding and size.

import type { Value } from "../../../proto/gen/pipewright/v1/value_pb.js";

const utf8 = new TextDecoder();

/** The value as plain JavaScript: JSON payloads decoded, lists and maps built, errors as `{error}`. */
export function plainValue(v: Value | undefined): unknown {
  if (!v) return null;
  switch (v.kind.case) {
    case "payload": {
      const { encoding, data } = v.kind.value;
      if (encoding === "" || encoding === "json") {
        try {
          return JSON.parse(utf8.decode(data)) as unknown;
        } catch {
          return `[invalid JSON, ${data.length} bytes]`;
        }
      }
      if (encoding === "text") return utf8.decode(data);
      return `[${encoding}, ${data.length} bytes]`;
    }
    case "list":
      return v.kind.value.items.map(plainValue);
    case "map":
      return Object.fromEntries(Object.entries(v.kind.value.entries).map(([k, item]) => [k, plainValue(item)]));
    case "error":
      return { error: `${v.kind.value.type}: ${v.kind.value.message}` };
    default:
      return null;
  }
}

/** JSON text of a value, cut at `max` characters. */
export function valueText(v: Value | undefined, max = 200): string {
  const text = JSON.stringify(plainValue(v)) ?? "null";
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** How far a progress value says a task is, 0..1, when it says (a fraction, {done,total}, {percent}). */
export function progressFraction(v: Value | undefined): number | undefined {
  const p = plainValue(v);
  if (typeof p === "number" && p >= 0 && p <= 1) return p;
  if (p && typeof p === "object") {
    const o = p as Record<string, unknown>;
    const done = o.done ?? o.current ?? o.completed;
    if (typeof done === "number" && typeof o.total === "number" && o.total > 0) return Math.min(1, Math.max(0, done / o.total));
    if (typeof o.percent === "number") return Math.min(1, Math.max(0, o.percent / 100));
  }
  return undefined;
}
