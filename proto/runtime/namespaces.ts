// Namespaces: every run, queue, worker and token belongs to one. A caller names
// its namespace in the metadata of each call (`pipewright-namespace`, absent:
// "default"), the same way for every method and every gRPC language; the server
// checks it against the caller's token before the request is read.

/** The call metadata key that names the caller's namespace. */
export const NAMESPACE_HEADER = "pipewright-namespace";

/** What a call without the header works in: everything there was before namespaces. */
export const DEFAULT_NAMESPACE = "default";

/** 1 to 63 of a-z 0-9 _ -, starting with a letter or digit (fits a DNS label, a metric label, a file name). */
const NAMESPACE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Why `name` is not a namespace name; undefined when it is one. */
export function namespaceProblem(name: string): string | undefined {
  if (NAMESPACE.test(name)) return undefined;
  return `a namespace is 1 to 63 of a-z 0-9 _ -, starting with a letter or digit; got ${JSON.stringify(name.slice(0, 80))}`;
}

/** Queue names hold no control characters: the server keys a namespace's queues with one (U+001F). */
export const QUEUE_NAME_CONTROL = /[\u0000-\u001f\u007f]/;

// A queue (or a task's circuit breaker) as the server keys it: the namespace
// and the name in one string, so that everything keyed by queue (the queue
// table and its claim, worker sessions, slot reservations, "no worker serves
// it", metrics) or by task (circuit breakers) keeps each namespace apart
// without knowing of namespaces. A worker of namespace A only holds keys of A:
// no key of B can match it.
//
// The default namespace's keys are the names as they always were (rows written
// before namespaces need no change); another namespace's are "namespace U+001F
// name". Queue names hold no control characters (checked on submit and on a
// worker's hello) and task names are letters, digits and _ . : / -, so no
// default name looks like another namespace's key.

const KEY_SEPARATOR = "\u001f";

/** The key of `name` (a queue, a task) in `namespace`. */
export function namespacedKey(namespace: string, name: string): string {
  return namespace === DEFAULT_NAMESPACE ? name : `${namespace}${KEY_SEPARATOR}${name}`;
}

/** The key of `name` in the namespace of `key` (a task's breaker from its queue's key), without splitting it. */
export function keyBeside(key: string, name: string): string {
  const i = key.indexOf(KEY_SEPARATOR);
  return i < 0 ? name : key.slice(0, i + 1) + name;
}

/** A key's namespace and name. */
export function splitNamespacedKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf(KEY_SEPARATOR);
  return i < 0 ? { namespace: DEFAULT_NAMESPACE, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The default queue is written "" or "default"; "" is what is stored. */
export function normalizeQueue(q: string): string {
  return q === "default" ? "" : q;
}

/** The key of `queue` in `namespace`. */
export function queueKey(namespace: string, queue: string): string {
  return namespacedKey(namespace, normalizeQueue(queue));
}

/** A queue's key as people read it (logs, metric labels): "default", "email", or "team-a/email" for another namespace's queue. */
export function queueLabel(key: string): string {
  const { namespace, name } = splitNamespacedKey(key);
  return namespace === DEFAULT_NAMESPACE ? name || "default" : `${namespace}/${name || "default"}`;
}

/** A task's key (its circuit breaker) as people read it: "send_email", or "team-a/send_email" for another namespace's. */
export function taskLabel(key: string): string {
  const { namespace, name } = splitNamespacedKey(key);
  return namespace === DEFAULT_NAMESPACE ? name : `${namespace}/${name}`;
}
