import type { Queryable } from '../client';
import { CHANNELS } from './rows';
import { toSql } from './states';

export interface NewTaskInstance {
  id: string;
  taskName: string;
  args: unknown;
  queue: string;
  priority: number;
  maxTries: number;
  retryDelayMs: number;
  retryBackoff: number;
  retryMaxDelayMs: number;
  executionTimeoutMs: number | null;
  runAfter: Date | null;
  idempotencyKey: string | null;
  /** A hash of the request, kept with the idempotency key to tell a repeat from another request. */
  requestHash?: string | null;
  actor: string;
}

// Uses task_instance_idempotency_key_key (partial: only rows with a key) for the conflict. Notifies the scheduler in the same
// statement (NOTIFY is delivered at commit) so a new task is dispatched without waiting for a poll.
const SQL = `
WITH ins AS (
  INSERT INTO task_instance (id, task_name, args, queue, priority, state, max_tries, retry_delay_ms,
    retry_backoff, retry_max_delay_ms, execution_timeout_ms, run_after, idempotency_key, request_hash, last_actor)
  VALUES ($1, $2, $3, $4, $5, ${toSql('enqueue')}, $6, $7, $8, $9, $10, coalesce($11, now()), $12, $14, $13)
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id
)
SELECT id, pg_notify('${CHANNELS.taskScheduled}', '') AS notified FROM ins`;

/**
 * Records a new scheduled task instance. With an idempotency key already used, returns the id of
 * the existing one, `created: false` and the request hash it was created with (null for rows
 * from before request hashes were kept).
 */
export async function insertTaskInstance(db: Queryable, t: NewTaskInstance): Promise<{ id: string; created: boolean; requestHash: string | null }> {
  const { rows } = await db.query<{ id: string }>(SQL, [
    t.id,
    t.taskName,
    JSON.stringify(t.args),
    t.queue,
    t.priority,
    t.maxTries,
    t.retryDelayMs,
    t.retryBackoff,
    t.retryMaxDelayMs,
    t.executionTimeoutMs,
    t.runAfter,
    t.idempotencyKey,
    t.actor,
    t.requestHash ?? null,
  ]);
  if (rows[0]) return { id: rows[0].id, created: true, requestHash: t.requestHash ?? null };
  // The conflicting row was committed by another statement, which this statement's snapshot may
  // not see: read it in a new statement.
  const existing = await db.query<{ id: string; request_hash: string | null }>('SELECT id, request_hash FROM task_instance WHERE idempotency_key = $1', [
    t.idempotencyKey,
  ]);
  if (!existing.rows[0]) throw new Error('idempotency conflict, but no task instance holds the key');
  return { id: existing.rows[0].id, created: false, requestHash: existing.rows[0].request_hash };
}
