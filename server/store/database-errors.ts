// What a failed database call means for the work that was in it: the one
// place that reads the driver's error codes and PostgreSQL's SQLSTATEs.
//
// "Unavailable": the database cannot be reached or cannot work right now
// (connection lost, shutting down, out of disk, a deadlock); the same work
// may succeed later, so it is kept and retried. Anything else is taken to be
// about the data itself (a character PostgreSQL cannot store, a value too
// large for one statement): retrying it can never succeed, and it must not
// fail the other items committed with it.

/** Driver codes (postgres.js, Node's net) for "not reachable right now". */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * SQLSTATE classes of passing trouble: 08 connection exception, 40
 * transaction rollback (serialization failure, deadlock), 53 insufficient
 * resources, 57 operator intervention (shutdown, crash recovery), 58 system
 * error (I/O); and 55P03, lock not available.
 */
const TRANSIENT_CLASSES = new Set(["08", "40", "53", "57", "58"]);

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/** True when the database could not do the work now, but might later. */
export function isUnavailable(err: unknown): boolean {
  const code = codeOf(err);
  if (CONNECTION_CODES.has(code) || code === "55P03") return true;
  return code.length === 5 && TRANSIENT_CLASSES.has(code.slice(0, 2));
}

/** A short reason, fit for a client, why data could not be stored (no SQL, no values). */
export function storageProblem(err: unknown): { reason: string; tooLarge: boolean } {
  const code = codeOf(err);
  const message = (err as Error | null)?.message ?? "";
  if (err instanceof RangeError || code === "54000" || code === "54001" || /too large|exceeds|alloc request size|Invalid string length/i.test(message)) {
    return { reason: "it is too large to store", tooLarge: true };
  }
  if (code === "22021" || code === "22P05" || /byte sequence|0x00/.test(message)) return { reason: "it holds text the database cannot store", tooLarge: false };
  if (code === "22008" || code === "22003") return { reason: "it holds a time or number out of the database's range", tooLarge: false };
  return { reason: "the database refused it", tooLarge: false };
}
