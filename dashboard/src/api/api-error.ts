// The one error the dashboard's API calls throw: the gateway's HTTP status with its Connect
// error code and message, so a view can say "token needed" for a 401 and show the server's
// own words for anything else.

/** An error answered by the server's JSON gateway (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when the server could not be reached. */
    readonly status: number,
    /** Connect error code in snake_case, e.g. "permission_denied", "not_found". */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** True when the server wants a (valid) token: the page asks for one. */
  get needsToken(): boolean {
    return this.status === 401 || this.code === "unauthenticated";
  }

  get permissionDenied(): boolean {
    return this.status === 403 || this.code === "permission_denied";
  }
}

/** What a view shows for an error: "token needed" for a 401, the server's message otherwise. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.needsToken) return "Token needed: enter a token with the right scope above.";
    return err.message ? `${err.message} (${err.code})` : err.code;
  }
  return err instanceof Error ? err.message : String(err);
}
