import { z } from 'zod';
import type { DeferrableError } from './errors';

const RETRY_FIELDS = {
  maxTries: z.number().int().min(1).max(1000),
  delayMs: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3600 * 1000),
  /** Multiplier applied per try: delay * backoff^(try-1). 1 means a constant delay. */
  backoff: z.number().min(1).max(100),
  // An INTEGER column: at most 2^31 - 1 ms (about 24.8 days).
  maxDelayMs: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1),
};

/** A whole retry policy; each field left out takes the system default. */
export const RetryPolicySchema = z.object({
  maxTries: RETRY_FIELDS.maxTries.default(1),
  delayMs: RETRY_FIELDS.delayMs.default(1000),
  backoff: RETRY_FIELDS.backoff.default(2),
  maxDelayMs: RETRY_FIELDS.maxDelayMs.default(3600 * 1000),
});

/**
 * What a request may override of its task type's retry policy (the tries go at the top of the
 * request): no defaults here, so a field left out keeps the definition's value. Strict: an
 * unknown key (say retry.maxTries) is refused, not dropped.
 */
export const RetryOverrideSchema = z.object(RETRY_FIELDS).omit({ maxTries: true }).partial().strict();
export type RetryPolicy = z.infer<typeof RetryPolicySchema>;

export type RetryDecision = { kind: 'retry'; runAfter: Date } | { kind: 'fail' };

/** Pure: whether the try that just failed with `error` is retried, and when. */
export function decideRetry(args: {
  tryNumber: number;
  maxTries: number;
  policy: Pick<RetryPolicy, 'delayMs' | 'backoff' | 'maxDelayMs'>;
  error: Pick<DeferrableError, 'retryable'>;
  now: number;
}): RetryDecision {
  if (!args.error.retryable || args.tryNumber >= args.maxTries) return { kind: 'fail' };
  return { kind: 'retry', runAfter: new Date(args.now + retryDelayMs(args.tryNumber, args.policy)) };
}

export function retryDelayMs(tryNumber: number, policy: Pick<RetryPolicy, 'delayMs' | 'backoff' | 'maxDelayMs'>): number {
  // A zero base delay stays zero: 0 * Infinity (a large backoff^try overflows) would be NaN.
  if (policy.delayMs === 0) return 0;
  const raw = policy.delayMs * Math.pow(policy.backoff, Math.max(0, tryNumber - 1));
  return Math.min(policy.maxDelayMs, Math.round(raw));
}
