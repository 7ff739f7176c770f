import type { Queryable } from '../client';
import type { DispatchRow } from './rows';

// Index: task_instance_dispatch_idx (state, priority DESC, run_after). SKIP LOCKED lets several
// schedulers dispatch at once without taking the same rows.
const DISPATCH_DUE = `
WITH picked AS (
  SELECT id FROM task_instance
  WHERE state = 'scheduled' AND run_after <= now()
  ORDER BY priority DESC, run_after
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), upd AS (
  UPDATE task_instance ti
  SET state = 'queued', dispatch_attempt = ti.dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $2
  WHERE ti.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ti.id, ti.try_number, ti.dispatch_attempt, ti.queue, ti.priority, ti.next_method, ti.run_after
)
SELECT id, try_number, dispatch_attempt, queue, priority, next_method FROM upd ORDER BY priority DESC, run_after`;

/** scheduled -> queued for up to `limit` due task instances; the caller publishes one job each. */
export async function dispatchDue(db: Queryable, limit: number, actor: string): Promise<DispatchRow[]> {
  return (await db.query<DispatchRow>(DISPATCH_DUE, [limit, actor])).rows;
}

// Primary key lookups; the fast path right after a resume, in the resume's own transaction.
// run_after is stored rounded to the millisecond, so a row made due by now() in this same
// transaction can read up to half a millisecond after now(): compare with that margin.
const DISPATCH_IDS = `
UPDATE task_instance
SET state = 'queued', dispatch_attempt = dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $2
WHERE id = ANY($1::uuid[]) AND state = 'scheduled' AND run_after < now() + interval '1 millisecond'
RETURNING id, try_number, dispatch_attempt, queue, priority, next_method`;

/** scheduled -> queued for these task instances (those still scheduled and due). */
export async function dispatchIds(db: Queryable, ids: readonly string[], actor: string): Promise<DispatchRow[]> {
  if (ids.length === 0) return [];
  return (await db.query<DispatchRow>(DISPATCH_IDS, [ids, actor])).rows;
}

// queued rows older than the grace period; index task_instance_dispatch_idx (state leads).
const STALE_QUEUED = `
SELECT id, try_number, dispatch_attempt, queue, priority, next_method FROM task_instance
WHERE state = 'queued' AND queued_at < now() - make_interval(secs => $1::float8 / 1000)
ORDER BY queued_at LIMIT $2`;

/** Queued task instances whose job may have been lost (Redis emptied, scheduler killed mid-dispatch). */
export async function staleQueued(db: Queryable, olderThanMs: number, limit: number): Promise<DispatchRow[]> {
  return (await db.query<DispatchRow>(STALE_QUEUED, [olderThanMs, limit])).rows;
}

const REDISPATCH = `
UPDATE task_instance
SET dispatch_attempt = dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $3
WHERE id = $1 AND state = 'queued' AND dispatch_attempt = $2
RETURNING id, try_number, dispatch_attempt, queue, priority, next_method`;

/**
 * A new dispatch attempt for a queued task whose job is gone. The attempt number is part of the
 * job id and of the worker's compare-and-set, so a late copy of the old job changes nothing.
 */
export async function redispatch(db: Queryable, row: DispatchRow, actor: string): Promise<DispatchRow | null> {
  return (await db.query<DispatchRow>(REDISPATCH, [row.id, row.dispatch_attempt, actor])).rows[0] ?? null;
}
