import type { Queryable } from '../client';

export interface StaleRunRow {
  id: string;
  try_number: number;
  max_tries: number;
  worker_id: string | null;
  retry_delay_ms: number;
  retry_backoff: number;
  retry_max_delay_ms: number;
}

// Index: task_instance_heartbeat_idx (state, heartbeat_at). Rows are locked so that two
// schedulers do not both reap one; the caller decides retry or fail and updates in the same transaction.
const STALE_RUNS = `
SELECT id, try_number, max_tries, worker_id, retry_delay_ms, retry_backoff, retry_max_delay_ms
FROM task_instance
WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)
ORDER BY heartbeat_at LIMIT $2
FOR UPDATE SKIP LOCKED`;

/** Running task instances whose worker stopped heartbeating (call inside a transaction). */
export async function lockStaleRuns(db: Queryable, olderThanMs: number, limit: number): Promise<StaleRunRow[]> {
  return (await db.query<StaleRunRow>(STALE_RUNS, [olderThanMs, limit])).rows;
}

// The reaper's own transition: the rows are locked by lockStaleRuns in the same transaction, so
// the compare-and-set needs only state and try; a worker id is not needed (a row may have none:
// a NULL cast to a uuid must never fail the whole batch). One statement for the batch.
// Index: task_instance_pkey.
const REAP = `
UPDATE task_instance ti
SET state = CASE WHEN r.retry_in_ms IS NULL THEN 'failed' ELSE 'up_for_retry' END::task_state,
    error = r.error, updated_at = now(), last_actor = $5,
    run_after = CASE WHEN r.retry_in_ms IS NULL THEN ti.run_after ELSE now() + make_interval(secs => r.retry_in_ms / 1000) END,
    ended_at = CASE WHEN r.retry_in_ms IS NULL THEN now() ELSE NULL END
FROM unnest($1::uuid[], $2::int[], $3::float8[], $4::jsonb[]) AS r(id, try_number, retry_in_ms, error)
WHERE ti.id = ANY($1::uuid[]) AND ti.id = r.id AND ti.state = 'running' AND ti.try_number = r.try_number
RETURNING ti.id`;

export interface ReapedRun {
  id: string;
  tryNumber: number;
  /** Recorded as the task's error. */
  error: unknown;
  /** running -> up_for_retry after this delay; null: running -> failed. */
  retryInMs: number | null;
}

/** running -> up_for_retry or failed for runs locked by lockStaleRuns; returns the ids changed. */
export async function reapRuns(db: Queryable, runs: readonly ReapedRun[], actor: string): Promise<string[]> {
  if (runs.length === 0) return [];
  const { rows } = await db.query<{ id: string }>(REAP, [
    runs.map((r) => r.id),
    runs.map((r) => r.tryNumber),
    runs.map((r) => r.retryInMs),
    runs.map((r) => JSON.stringify(r.error)),
    actor,
  ]);
  return rows.map((r) => r.id);
}

// Deletes triggers that no deferred task waits on. The deferral inserts its trigger and the
// deferred state in one statement, so there is no moment when a wanted trigger looks orphaned.
// SKIP LOCKED: a trigger another transaction holds (a claim, an outcome being recorded, another
// scheduler's cleanup) is left for the next round, so the cleanup never queues behind the hot
// path and two schedulers' cleanups cannot deadlock.
// Index: task_instance_trigger_idx serves the NOT EXISTS probe.
const DELETE_ORPHANS = `
DELETE FROM trigger t
WHERE t.id = ANY(ARRAY(
  SELECT t2.id FROM trigger t2
  WHERE NOT EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t2.id AND ti.state = 'deferred')
  LIMIT $1
  FOR UPDATE SKIP LOCKED
))
RETURNING t.id`;

export async function deleteOrphanTriggers(db: Queryable, limit: number): Promise<string[]> {
  return (await db.query<{ id: string }>(DELETE_ORPHANS, [limit])).rows.map((r) => r.id);
}

const CANCEL = `
UPDATE task_instance
SET state = 'cancelled', trigger_id = NULL, trigger_timeout = NULL, ended_at = now(), updated_at = now(), last_actor = $2
WHERE id = $1 AND state IN ('scheduled', 'queued', 'running', 'deferred', 'up_for_retry')
RETURNING id`;

/** Any non-terminal state -> cancelled. False when the task had already ended. */
export async function cancelTask(db: Queryable, id: string, actor: string): Promise<boolean> {
  return (await db.query(CANCEL, [id, actor])).rowCount === 1;
}
