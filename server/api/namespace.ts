// The namespace a call works in: its `pipewright-namespace` metadata (absent:
// the default namespace), checked as the call's headers arrive, before any
// request is read (auth.ts does it with the token check; without tokens,
// `namespaceInterceptor` does it alone).

import * as grpc from "@grpc/grpc-js";
import { DEFAULT_NAMESPACE, NAMESPACE_HEADER, namespaceProblem } from "@pipewright/protocol";

/** Services whose calls are checked, for tokens and namespaces (the rest, health and reflection, are open). */
export const GUARDED_PREFIX = "/pipewright.";

/** The call's namespace. Only for calls the interceptor let through (their header is valid). */
export function callNamespace(metadata: grpc.Metadata | undefined): string {
  const values = metadata?.get(NAMESPACE_HEADER) ?? [];
  return typeof values[0] === "string" && values[0] !== "" ? values[0] : DEFAULT_NAMESPACE;
}

/** INVALID_ARGUMENT for a header that names no valid namespace (or names several); undefined when fine. */
export function namespaceRefusal(metadata: grpc.Metadata): grpc.StatusObject | undefined {
  const values = metadata.get(NAMESPACE_HEADER);
  if (values.length === 0) return undefined;
  const problem = values.length > 1 ? "given more than once" : typeof values[0] !== "string" ? "must be text" : namespaceProblem(values[0]);
  if (!problem) return undefined;
  return { code: grpc.status.INVALID_ARGUMENT, details: `invalid request: ${NAMESPACE_HEADER} metadata: ${problem}`, metadata: new grpc.Metadata() };
}

/** Refuses a call of a pipewright service whose namespace header is malformed (servers without tokens). */
export const namespaceInterceptor: grpc.ServerInterceptor = (descriptor, call) =>
  new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMetadata: (metadata, pass) => {
          const refusal = descriptor.path.startsWith(GUARDED_PREFIX) ? namespaceRefusal(metadata) : undefined;
          if (refusal) call.sendStatus(refusal);
          else pass(metadata);
        },
      }),
  });
