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

// Deletes triggers that no deferred task waits on. The deferral inserts its trigger and the
// deferred state in one statement, so there is no moment when a wanted trigger looks orphaned.
// Index: task_instance_trigger_idx serves the NOT EXISTS probe.
const DELETE_ORPHANS = `
DELETE FROM trigger t
WHERE t.id IN (
  SELECT t2.id FROM trigger t2
  WHERE NOT EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t2.id AND ti.state = 'deferred')
  LIMIT $1
)
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
