import { decideRetry, type DeferrableError } from '@deferrable/domain';

/** The retry columns of a task instance row. */
export interface RetryColumns {
  try_number: number;
  max_tries: number;
  retry_delay_ms: number;
  retry_backoff: number;
  retry_max_delay_ms: number;
}

/** How long until the failed try is retried, or null when it is not (no tries left, not retryable). */
export function retryInMs(row: RetryColumns, error: Pick<DeferrableError, 'retryable'>, now: number): number | null {
  const decision = decideRetry({
    tryNumber: row.try_number,
    maxTries: row.max_tries,
    policy: { delayMs: row.retry_delay_ms, backoff: row.retry_backoff, maxDelayMs: row.retry_max_delay_ms },
    error,
    now,
  });
  return decision.kind === 'retry' ? Math.max(0, decision.runAfter.getTime() - now) : null;
}
