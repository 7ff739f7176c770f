import { TERMINAL_STATES } from '@deferrable/domain';
import type { Queryable } from '../client';
import { sqlState } from './states';

// Retention: each statement deletes one small batch of old rows. Rows are picked with
// FOR UPDATE SKIP LOCKED, so a batch never waits on (nor blocks) a row the hot path holds, and
// two schedulers never delete the same rows; the caller repeats while a batch comes back full.
// `$1` is the age in milliseconds, `$2` the batch size.

const TERMINAL = `ARRAY[${TERMINAL_STATES.map(sqlState).join(', ')}]`;

// Finished task instances; their task_transition rows go with them (ON DELETE CASCADE, found by
// task_transition_task_idx). Index: task_instance_ended_idx (partial: terminal states).
const DELETE_FINISHED = `
WITH picked AS (
  SELECT id FROM task_instance
  WHERE state = ANY(${TERMINAL}) AND ended_at < now() - make_interval(secs => $1::float8 / 1000)
  ORDER BY ended_at LIMIT $2
  FOR UPDATE SKIP LOCKED
)
DELETE FROM task_instance WHERE id = ANY(ARRAY(SELECT id FROM picked)) AND state = ANY(${TERMINAL})`;

/** One batch of a retention statement: how many rows it deleted. */
type DeleteOld = (db: Queryable, olderThanMs: number, limit: number) => Promise<number>;
const deleteWith =
  (sql: string): DeleteOld =>
  async (db, olderThanMs, limit) =>
    (await db.query(sql, [olderThanMs, limit])).rowCount ?? 0;

/** Deletes up to `limit` task instances that ended (terminal state) more than `olderThanMs` ago. */
export const deleteFinishedTasks = deleteWith(DELETE_FINISHED);

// Job rows of processes that ended, or whose heartbeat stopped (a process killed with kill -9
// never ends its row). The table holds one row per process start: a scan is cheap. Nothing
// references a job row: the claim treats a triggerer without a live job row as dead.
const DELETE_JOBS = `
WITH picked AS (
  SELECT id FROM job
  WHERE ended_at < now() - make_interval(secs => $1::float8 / 1000)
     OR latest_heartbeat < now() - make_interval(secs => $1::float8 / 1000)
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)
DELETE FROM job WHERE id = ANY(ARRAY(SELECT id FROM picked))`;

/** Deletes up to `limit` job rows that ended, or last heartbeated, more than `olderThanMs` ago. */
export const deleteOldJobs = deleteWith(DELETE_JOBS);

// Index: rejection_created_idx.
const DELETE_REJECTIONS = `
WITH picked AS (
  SELECT id FROM rejection
  WHERE created_at < now() - make_interval(secs => $1::float8 / 1000)
  ORDER BY created_at LIMIT $2
  FOR UPDATE SKIP LOCKED
)
DELETE FROM rejection WHERE id = ANY(ARRAY(SELECT id FROM picked))`;

/** Deletes up to `limit` rejections recorded more than `olderThanMs` ago. */
export const deleteOldRejections = deleteWith(DELETE_REJECTIONS);
