// The token and namespace the page sends with every call. The token lives in sessionStorage:
// it survives a reload of the tab but not the tab itself, and is never written to localStorage
// where every later visitor of the machine would find it.

const TOKEN_KEY = "pipewright.token";
const NAMESPACE_KEY = "pipewright.namespace";

export interface Connection {
  /** Bearer token; empty: none sent. */
  token: string;
  /** `pipewright-namespace`; empty: the default namespace. */
  namespace: string;
}

export function loadConnection(): Connection {
  return { token: sessionStorage.getItem(TOKEN_KEY) ?? "", namespace: sessionStorage.getItem(NAMESPACE_KEY) ?? "" };
}

export function saveConnection(c: Connection): void {
  sessionStorage.setItem(TOKEN_KEY, c.token);
  sessionStorage.setItem(NAMESPACE_KEY, c.namespace);
}

/** The headers of a gateway call, the same metadata a gRPC client sends. */
export function connectionHeaders(c: Connection): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (c.token.trim()) headers.authorization = `Bearer ${c.token.trim()}`;
  if (c.namespace.trim()) headers["pipewright-namespace"] = c.namespace.trim();
  return headers;
}
