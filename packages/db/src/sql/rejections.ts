import { redactedExcerpt } from '@deferrable/domain';
import type { Queryable } from '../client';

const MAX_EXCERPT = 500;

/**
 * Records input refused where it entered (a malformed queue job, an invalid task request), so a
 * person can see what and why. The excerpt is redacted here (redactedExcerpt: the shape, the task
 * name, queue, priority, ids; arguments and every other value only described), whatever the
 * caller passes, and bounded.
 */
export async function recordRejection(db: Queryable, r: { source: string; jobId?: string | null; reason: string; excerpt?: unknown }): Promise<void> {
  let excerpt: string | null = null;
  if (r.excerpt !== undefined) {
    try {
      excerpt = JSON.stringify(redactedExcerpt(r.excerpt)).slice(0, MAX_EXCERPT);
    } catch {
      excerpt = '(unserialisable)';
    }
  }
  await db.query('INSERT INTO rejection (source, job_id, reason, excerpt) VALUES ($1, $2, $3, $4)', [
    r.source,
    r.jobId ?? null,
    r.reason.slice(0, 2000),
    excerpt,
  ]);
}
