import type { Queryable } from '../client';
import { TASK_COLUMNS, type TaskInstanceRow } from './rows';

// All statements here are primary-key updates guarded by the expected state, try and worker:
// a repeated or late message, or a worker that lost its task to the reaper, changes nothing.

const START = `
UPDATE task_instance
SET state = 'running', worker_id = $4, heartbeat_at = now(), started_at = coalesce(started_at, now()),
    updated_at = now(), last_actor = $5
WHERE id = $1 AND state = 'queued' AND try_number = $2 AND dispatch_attempt = $3
RETURNING ${TASK_COLUMNS}`;

/** queued -> running for exactly this try and dispatch attempt; null when another got there first. */
export async function startRun(
  db: Queryable,
  a: { id: string; tryNumber: number; dispatchAttempt: number; workerId: string; actor: string },
): Promise<TaskInstanceRow | null> {
  const { rows } = await db.query<TaskInstanceRow>(START, [a.id, a.tryNumber, a.dispatchAttempt, a.workerId, a.actor]);
  return rows[0] ?? null;
}

export interface RunKey {
  id: string;
  tryNumber: number;
  workerId: string;
  actor: string;
}

const SUCCEED = `
UPDATE task_instance
SET state = 'success', result = $4, error = NULL, ended_at = now(), updated_at = now(), last_actor = $5,
    next_method = NULL, next_kwargs = NULL
WHERE id = $1 AND state = 'running' AND try_number = $2 AND worker_id = $3
RETURNING id`;

export async function succeedRun(db: Queryable, k: RunKey, result: unknown): Promise<boolean> {
  const { rowCount } = await db.query(SUCCEED, [k.id, k.tryNumber, k.workerId, JSON.stringify(result ?? null), k.actor]);
  return rowCount === 1;
}

const FAIL = `
UPDATE task_instance
SET state = $4::task_state, error = $5, updated_at = now(), last_actor = $7,
    run_after = CASE WHEN $4::task_state = 'up_for_retry' THEN now() + make_interval(secs => $6::float8 / 1000) ELSE run_after END,
    ended_at = CASE WHEN $4::task_state = 'failed' THEN now() ELSE NULL END
WHERE id = $1 AND state = 'running' AND try_number = $2 AND worker_id = $3
RETURNING id`;

/** running -> up_for_retry (retryInMs given) or failed (retryInMs null). */
export async function failRun(db: Queryable, k: RunKey, error: unknown, retryInMs: number | null): Promise<boolean> {
  const state = retryInMs === null ? 'failed' : 'up_for_retry';
  const { rowCount } = await db.query(FAIL, [k.id, k.tryNumber, k.workerId, state, JSON.stringify(error), retryInMs ?? 0, k.actor]);
  return rowCount === 1;
}

export interface NewTrigger {
  id: string;
  classpath: string;
  /** Already encrypted. */
  kwargsToken: string;
  queue: string | null;
}

// One statement, so the trigger row and the deferred state commit together or not at all: the
// trigger is inserted only when the compare-and-set matched (the INSERT selects FROM upd). The
// foreign key is checked at the end of the statement, when both rows exist. No NOTIFY here: it
// would serialise every deferral's commit; the worker sends a Redis hint instead.
const DEFER = `
WITH upd AS (
  UPDATE task_instance
  SET state = 'deferred', trigger_id = $4, next_method = $5, next_kwargs = $6,
      trigger_timeout = CASE WHEN $7::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $7::float8 / 1000) END,
      worker_id = NULL, heartbeat_at = NULL, updated_at = now(), last_actor = $11
  WHERE id = $1 AND state = 'running' AND try_number = $2 AND worker_id = $3
  RETURNING id
), trg AS (
  INSERT INTO trigger (id, classpath, kwargs, queue)
  SELECT $4, $8, $9, $10 FROM upd
  RETURNING id
)
SELECT id FROM trg`;

/** running -> deferred with a new trigger, atomically. False when the run was no longer ours. */
export async function deferRun(
  db: Queryable,
  k: RunKey,
  d: { trigger: NewTrigger; nextMethod: string; nextKwargs: unknown; timeoutMs: number | null },
): Promise<boolean> {
  const { rowCount } = await db.query(DEFER, [
    k.id,
    k.tryNumber,
    k.workerId,
    d.trigger.id,
    d.nextMethod,
    JSON.stringify(d.nextKwargs ?? {}),
    d.timeoutMs,
    d.trigger.classpath,
    d.trigger.kwargsToken,
    d.trigger.queue,
    k.actor,
  ]);
  return rowCount === 1;
}

// Index: task_instance_heartbeat_idx (state, heartbeat_at) does not lead with worker_id; the
// running set is small, and the state prefix keeps the scan to running rows.
const HEARTBEAT = `
UPDATE task_instance SET heartbeat_at = now()
WHERE state = 'running' AND worker_id = $1
RETURNING id, try_number`;

/** Heartbeats every run this worker holds; returns the ones it still holds. */
export async function heartbeatRuns(db: Queryable, workerId: string): Promise<{ id: string; try_number: number }[]> {
  return (await db.query<{ id: string; try_number: number }>(HEARTBEAT, [workerId])).rows;
}
