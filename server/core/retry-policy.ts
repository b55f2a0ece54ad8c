// When a failed attempt is tried again, and after how long.

import type { RetryPolicy } from "@pipewright/protocol";
import type { TaskError } from "@pipewright/protocol";
import { NEVER_RETRIED } from "./values.js";
import { optionalMs } from "@pipewright/protocol";

/** The policy with every default filled in; durations in milliseconds. */
export interface EffectiveRetry {
  maxAttempts: number;
  initialDelayMs: number;
  backoffFactor: number;
  maxDelayMs: number;
  retryOn: readonly string[];
}

export const DEFAULT_RETRY: EffectiveRetry = {
  maxAttempts: 1,
  initialDelayMs: 1000,
  backoffFactor: 2,
  maxDelayMs: 5 * 60_000,
  retryOn: [],
};

export function effectiveRetry(policy: RetryPolicy | undefined, serverDefault: EffectiveRetry = DEFAULT_RETRY): EffectiveRetry {
  if (!policy) return serverDefault;
  return {
    maxAttempts: policy.maxAttempts || serverDefault.maxAttempts,
    initialDelayMs: optionalMs(policy.initialDelay) ?? serverDefault.initialDelayMs,
    backoffFactor: policy.backoffFactor || serverDefault.backoffFactor,
    maxDelayMs: optionalMs(policy.maxDelay) ?? serverDefault.maxDelayMs,
    retryOn: policy.retryOn,
  };
}

/**
 * The delay before the next attempt, or undefined when the failure is final.
 * `attempt` is the number of the attempt that just failed (1 for the first).
 */
export function retryDelay(policy: EffectiveRetry, attempt: number, error: TaskError): number | undefined {
  if (error.terminal || NEVER_RETRIED.has(error.type)) return undefined;
  if (attempt >= policy.maxAttempts) return undefined;
  if (policy.retryOn.length > 0 && !policy.retryOn.includes(error.type)) return undefined;
  const delay = policy.initialDelayMs * Math.pow(policy.backoffFactor, attempt - 1);
  return Math.min(delay, policy.maxDelayMs);
}
