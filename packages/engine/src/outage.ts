import { isTransientDbError } from '@deferrable/db';

export interface OutageRetry {
  /** Errors worth waiting out; by default, an unreachable database (isTransientDbError). */
  retryable?: (err: unknown) => boolean;
  /** Ends the retries after `attempt` failed tries (the process is stopping): the error is thrown. */
  giveUp: (attempt: number) => boolean;
  /** Told of each failed try that will be retried (callers log every tenth or so). */
  onRetry: (err: unknown, attempt: number) => void;
  /** Backoff: baseDelayMs * 2^attempt, at most maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Runs `write` until it succeeds, waiting out the errors `retryable` accepts with a capped
 * exponential backoff. The one loop behind every write that must outlast a database outage: a
 * worker's run steps, a task request, a triggerer's outcomes. Any other error is thrown at once.
 */
export async function retryThroughOutage<T>(write: () => Promise<T>, o: OutageRetry): Promise<T> {
  const retryable = o.retryable ?? isTransientDbError;
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!retryable(err) || o.giveUp(attempt)) throw err;
      o.onRetry(err, attempt);
      await new Promise((r) => setTimeout(r, Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** attempt)));
    }
  }
}
