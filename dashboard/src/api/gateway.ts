// Calls to the server's JSON gateway: `POST /api/<service>/<Method>` with the request as
// protobuf JSON, in the shape of the Connect protocol's unary JSON. Server streaming
// (WatchRun) answers NDJSON, read with fetch and a stream reader because EventSource cannot
// send the authorization header.

import { fromJson, toJson, type DescMessage, type JsonValue, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { ApiError } from "./api-error.js";
import { connectionHeaders, type Connection } from "./connection.js";

/** One RPC: its path under /api/ and its two message schemas. */
export interface Method<I extends DescMessage, O extends DescMessage> {
  path: string;
  input: I;
  output: O;
}

export function method<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O): Method<I, O> {
  return { path, input, output };
}

/** Reads unknown fields in answers without failing: a newer server may add fields. */
const READ = { ignoreUnknownFields: true } as const;

async function post(conn: Connection, path: string, body: JsonValue, signal?: AbortSignal): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(`api/${path}`, { method: "POST", headers: connectionHeaders(conn), body: JSON.stringify(body), signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(0, "unavailable", `cannot reach the server: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** The gateway's error body `{code, message}`, or the bare HTTP status when there is none. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === "string") return new ApiError(response.status, body.code, typeof body.message === "string" ? body.message : "");
  } catch {
    // not JSON: a proxy's page, or no gateway at this address
  }
  return new ApiError(response.status, `http_${response.status}`, text.slice(0, 200) || response.statusText);
}

/** A unary call. */
export async function callUnary<I extends DescMessage, O extends DescMessage>(
  conn: Connection,
  m: Method<I, O>,
  request: MessageInitShape<I>,
  signal?: AbortSignal,
): Promise<MessageShape<O>> {
  const body = toJson(m.input, create(m.input, request));
  const response = await post(conn, m.path, body, signal);
  return fromJson(m.output, (await response.json()) as JsonValue, READ);
}

/**
 * A server-streaming call: `onMessage` gets each message as it arrives; resolves when the
 * stream ends, rejects with the stream's error line (`{"error": {...}}`) or a network failure.
 * Abort `signal` to stop reading.
 */
export async function callStream<I extends DescMessage, O extends DescMessage>(
  conn: Connection,
  m: Method<I, O>,
  request: MessageInitShape<I>,
  onMessage: (message: MessageShape<O>) => void,
  signal?: AbortSignal,
): Promise<void> {
  const response = await post(conn, m.path, toJson(m.input, create(m.input, request)), signal);
  if (!response.body) throw new ApiError(0, "internal", "the stream has no body");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const handleLine = (line: string) => {
    if (!line.trim()) return;
    const json = JSON.parse(line) as JsonValue & { error?: { code?: string; message?: string } };
    if (json && typeof json === "object" && !Array.isArray(json) && "error" in json && json.error) {
      throw new ApiError(500, json.error.code ?? "unknown", json.error.message ?? "");
    }
    onMessage(fromJson(m.output, json, READ));
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    // One split per chunk: a chunk of the history can hold thousands of lines.
    const lines = (buffered + value).split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) handleLine(line);
  }
  handleLine(buffered);
}
