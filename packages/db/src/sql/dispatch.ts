import type { Queryable } from '../client';
import { JOB_RUNNING } from './jobs';
import { fromSql, sqlState, toSql } from './states';
import type { DispatchRow } from './rows';

// Dispatches due scheduled rows in priority order, but only into queues whose backlog (queued
// rows, i.e. jobs waiting in Redis or running) is below a mark: the larger of `ahead` and twice
// the slots of the live workers that serve the queue. The rest wait in PostgreSQL, where priority
// still orders them, instead of flooding Redis (and the scheduler's event loop) with a burst's
// whole backlog at once. `held` says a queue with live workers is at its mark (after this
// dispatch), so the caller should look again soon.
// The queues with scheduled rows are found by a loose index scan (one probe per queue), and each
// queue with room is read from its own part of task_instance_dispatch_idx, so a full queue costs
// nothing however many rows wait in it. SKIP LOCKED lets several schedulers dispatch at once.
const DISPATCH_DUE = `
WITH RECURSIVE queues AS (
  (SELECT queue FROM task_instance WHERE state = ${sqlState('scheduled')} ORDER BY queue LIMIT 1)
  UNION ALL
  SELECT (SELECT t.queue FROM task_instance t WHERE t.state = ${sqlState('scheduled')} AND t.queue > q.queue ORDER BY t.queue LIMIT 1)
  FROM queues q WHERE q.queue IS NOT NULL
), live AS (
  SELECT q.queue, sum(j.capacity / greatest(1, cardinality(j.queues))) AS slots
  FROM job j CROSS JOIN LATERAL unnest(j.queues) AS q(queue)
  WHERE j.job_type = 'worker' AND j.state = ${JOB_RUNNING}
    AND j.latest_heartbeat > now() - make_interval(secs => $4::float8 / 1000)
  GROUP BY q.queue
), backlog AS (
  SELECT queue, count(*) AS queued FROM task_instance WHERE state = ${sqlState('queued')} GROUP BY queue
), room AS (
  SELECT q.queue, l.slots IS NOT NULL AS served,
         greatest($3::bigint, 2 * coalesce(l.slots, 0)) - coalesce(b.queued, 0) AS room
  FROM queues q LEFT JOIN live l ON l.queue = q.queue LEFT JOIN backlog b ON b.queue = q.queue
  WHERE q.queue IS NOT NULL
), picked AS (
  SELECT p.id, p.priority, p.run_after, r.queue FROM room r
  CROSS JOIN LATERAL (
    SELECT ti.id, ti.priority, ti.run_after FROM task_instance ti
    WHERE ti.state ${fromSql('dispatch')} AND ti.queue = r.queue AND ti.run_after <= now()
    ORDER BY ti.priority DESC, ti.run_after
    LIMIT least($1::bigint, greatest(r.room, 0))
    FOR UPDATE SKIP LOCKED
  ) p
  WHERE r.room > 0
  ORDER BY p.priority DESC, p.run_after
  LIMIT $1
), upd AS (
  UPDATE task_instance ti
  SET state = ${toSql('dispatch')}, dispatch_attempt = ti.dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $2
  WHERE ti.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ti.id, ti.try_number, ti.dispatch_attempt, ti.queue, ti.priority, ti.next_method, ti.run_after
)
SELECT h.held, u.id, u.try_number, u.dispatch_attempt, u.queue, u.priority, u.next_method
FROM (SELECT EXISTS (SELECT 1 FROM room r WHERE r.served AND r.room <= (SELECT count(*) FROM picked p WHERE p.queue = r.queue)) AS held) h
LEFT JOIN upd u ON true
ORDER BY u.priority DESC, u.run_after`;

export interface DispatchLimits {
  /** The smallest backlog of queued tasks a queue may hold before dispatch to it waits. */
  ahead: number;
  /** A worker whose heartbeat is older than this does not count towards a queue's slots. */
  workersAliveWithinMs: number;
}

/**
 * scheduled -> queued for up to `limit` due task instances, in priority order, into queues below
 * their backlog mark (never past it); the caller publishes one job each. `held`: a queue with
 * live workers is at its mark once these are dispatched.
 */
export async function dispatchDueWithin(db: Queryable, limit: number, actor: string, limits: DispatchLimits): Promise<{ rows: DispatchRow[]; held: boolean }> {
  const { rows } = await db.query<DispatchRow & { held: boolean; id: string | null }>(DISPATCH_DUE, [limit, actor, limits.ahead, limits.workersAliveWithinMs]);
  return {
    held: rows[0]?.held ?? false,
    rows: rows.filter((r) => r.id !== null).map(({ held: _held, ...r }) => r),
  };
}

// Primary key lookups; the fast path right after a resume, in the resume's own transaction.
// run_after is stored rounded to the millisecond, so a row made due by now() in this same
// transaction can read up to half a millisecond after now(): compare with that margin.
const DISPATCH_IDS = `
UPDATE task_instance
SET state = ${toSql('dispatch')}, dispatch_attempt = dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $2
WHERE id = ANY($1::uuid[]) AND state ${fromSql('dispatch')} AND run_after < now() + interval '1 millisecond'
RETURNING id, try_number, dispatch_attempt, queue, priority, next_method`;

/** scheduled -> queued for these task instances (those still scheduled and due). */
export async function dispatchIds(db: Queryable, ids: readonly string[], actor: string): Promise<DispatchRow[]> {
  if (ids.length === 0) return [];
  return (await db.query<DispatchRow>(DISPATCH_IDS, [ids, actor])).rows;
}

// queued rows older than the grace period, after a cursor (queued_at, id) in that order, so a
// scan in bounded steps visits every row. Index task_instance_queued_idx (partial: queued rows,
// which the backlog marks keep few); the order across queues is a sort of those.
const STALE_QUEUED = `
SELECT id, try_number, dispatch_attempt, queue, priority, next_method, queued_at FROM task_instance
WHERE state = ${sqlState('queued')} AND queued_at < now() - make_interval(secs => $1::float8 / 1000)
  AND ($3::timestamptz IS NULL OR (queued_at, id) > ($3::timestamptz, $4::uuid))
ORDER BY queued_at, id LIMIT $2`;

/** Where a scan of long-queued rows resumes: after this row. */
export interface QueuedCursor {
  queuedAt: Date;
  id: string;
}

/**
 * Queued task instances whose job may have been lost (Redis emptied, scheduler killed
 * mid-dispatch), oldest first, after `after` when given. Each row carries its cursor.
 */
export async function staleQueued(
  db: Queryable,
  olderThanMs: number,
  limit: number,
  after: QueuedCursor | null = null,
): Promise<(DispatchRow & { cursor: QueuedCursor })[]> {
  const { rows } = await db.query<DispatchRow & { queued_at: Date }>(STALE_QUEUED, [olderThanMs, limit, after?.queuedAt ?? null, after?.id ?? null]);
  return rows.map(({ queued_at, ...r }) => ({ ...r, cursor: { queuedAt: queued_at, id: r.id } }));
}

const REDISPATCH = `
UPDATE task_instance
SET dispatch_attempt = dispatch_attempt + 1, queued_at = now(), updated_at = now(), last_actor = $3
WHERE id = $1 AND state = ${sqlState('queued')} AND dispatch_attempt = $2
RETURNING id, try_number, dispatch_attempt, queue, priority, next_method`;

/**
 * A new dispatch attempt for a queued task whose job is gone. The attempt number is part of the
 * job id and of the worker's compare-and-set, so a late copy of the old job changes nothing.
 */
export async function redispatch(db: Queryable, row: DispatchRow, actor: string): Promise<DispatchRow | null> {
  return (await db.query<DispatchRow>(REDISPATCH, [row.id, row.dispatch_attempt, actor])).rows[0] ?? null;
}
