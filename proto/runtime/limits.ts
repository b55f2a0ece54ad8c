// The limits every side of the protocol shares: client, worker and server
// encode, send and decode with the same numbers, so that whatever one side may
// send the other can receive. The README's "Limits" section lists each with
// its flag (where the server has one) and the error past it.

/** Largest gRPC message any side sends or receives (grpc-js's default receive limit is 4 MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Items packed in one message (assignments sent to a worker, results a
 * worker sends back): more are split over several messages (one item bigger
 * than this still goes, alone). Keeps one message from holding a whole batch
 * of big arguments, or three 24 MB errors (72 MB: past the message limit,
 * which broke the worker's stream again at every try).
 */
export const MAX_PACKED_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * A task's input (its arguments, keyword arguments, state and parent
 * results together) and a run's result (with its final state), in bytes of
 * payload: past it the step fails with pipewright.LimitExceeded. Half the
 * message limit, so that what carries them (an assignment, a run with its
 * steps' errors) still fits in one message.
 */
export const MAX_VALUE_BYTES = 32 * 1024 * 1024;

/** Groups nested in groups (deep structure belongs in child pipelines, which have their own limit). */
export const MAX_GROUP_NESTING = 64;

/**
 * Values nested in values (lists, maps, errors as values, error causes and
 * details). A group nested 64 deep gives a result nested 65 deep; child
 * pipelines returning group results nest further, and the server fails a step
 * whose input or result would pass this.
 */
export const MAX_VALUE_DEPTH = 256;

/**
 * Messages nested in messages, the protobuf decoder's recursion limit on
 * every side. Above what the limits above allow (64 groups x 3 messages +
 * 256 values x 2 + a dozen), below what the JavaScript stack takes.
 */
export const MAX_MESSAGE_DEPTH = 1000;

/** Longest duration (timeouts, retry delays): ten years. Longer would not fit a PostgreSQL timestamp once added to now. */
export const MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600;

/** Names: task names, queues, display names, run names, request ids, DAG node ids (characters). */
export const MAX_NAME_LENGTH = 200;

/** A worker's error: longer messages and stacks are cut, with a marker saying how much was cut. */
export const MAX_ERROR_MESSAGE_CHARS = 16 * 1024;
export const MAX_ERROR_STACK_CHARS = 16 * 1024;
/** Causes kept in one error (an aggregate of 10,000 failed branches keeps the first ones and says how many there were). */
export const MAX_ERROR_CAUSES = 100;
