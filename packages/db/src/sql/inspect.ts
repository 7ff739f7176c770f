import type { TaskState } from '@deferrable/domain';
import type { Queryable } from '../client';
import { JOB_RUNNING } from './jobs';

/** A page position: the (created_at, id) of the last row of the previous page. */
export interface Keyset {
  createdAt: Date;
  id: string;
}

export interface TaskListRow {
  id: string;
  task_name: string;
  state: TaskState;
  try_number: number;
  max_tries: number;
  queue: string;
  priority: number;
  idempotency_key: string | null;
  trigger_id: string | null;
  created_at: Date;
  updated_at: Date;
  ended_at: Date | null;
}

export interface TaskFilter {
  state?: TaskState;
  task?: string;
  queue?: string;
  /** Created at or after. */
  since?: Date;
  after?: Keyset;
  limit: number;
}

/** Task instances, newest first, one keyset page (uses task_instance_created_idx). */
export async function listTasks(db: Queryable, f: TaskFilter): Promise<TaskListRow[]> {
  const { rows } = await db.query<TaskListRow>(
    `SELECT id, task_name, state, try_number, max_tries, queue, priority, idempotency_key, trigger_id, created_at, updated_at, ended_at
     FROM task_instance
     WHERE ($1::task_state IS NULL OR state = $1::task_state)
       AND ($2::text IS NULL OR task_name = $2)
       AND ($3::text IS NULL OR queue = $3)
       AND ($4::timestamptz IS NULL OR created_at >= $4)
       AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
     ORDER BY created_at DESC, id DESC
     LIMIT $7`,
    [f.state ?? null, f.task ?? null, f.queue ?? null, f.since ?? null, f.after?.createdAt ?? null, f.after?.id ?? null, f.limit],
  );
  return rows;
}

export interface TransitionRow {
  try_number: number;
  from_state: TaskState | null;
  to_state: TaskState;
  actor: string | null;
  at: Date;
}

/** A task's audit log, oldest first (uses task_transition_task_idx). */
export async function taskTimeline(db: Queryable, taskInstanceId: string, limit = 1000): Promise<TransitionRow[]> {
  const { rows } = await db.query<TransitionRow>(
    `SELECT try_number, from_state, to_state, actor, at FROM task_transition
     WHERE task_instance_id = $1 ORDER BY at, id LIMIT $2`,
    [taskInstanceId, limit],
  );
  return rows;
}

export type TriggerState = 'waiting' | 'running' | 'fired';

export interface TriggerListRow {
  id: string;
  type: string;
  queue: string | null;
  state: TriggerState;
  triggerer_id: string | null;
  task_instance_id: string | null;
  task_name: string | null;
  created_at: Date;
  fired_at: Date | null;
  timeout_at: Date | null;
}

export interface TriggerFilter {
  state?: TriggerState;
  triggererId?: string;
  type?: string;
  queue?: string;
  after?: Keyset;
  limit: number;
}

/**
 * Triggers with the task that waits on each, oldest first: `waiting` (no triggerer has it yet),
 * `running` (a triggerer runs it), `fired` (its outcome is recorded and not yet applied). Kwargs
 * are never read here.
 */
export async function listTriggers(db: Queryable, f: TriggerFilter): Promise<TriggerListRow[]> {
  // The state filter as three flags (the state is computed below, not named in SQL).
  const want = (s: TriggerState) => f.state === undefined || f.state === s;
  const { rows } = await db.query<Omit<TriggerListRow, 'state'> & { fired: boolean }>(
    `SELECT t.id, t.classpath AS type, t.queue, t.triggerer_id, t.created_at, t.fired_at, t.event IS NOT NULL AS fired,
            ti.id AS task_instance_id, ti.task_name, ti.trigger_timeout AS timeout_at
     FROM trigger t
     LEFT JOIN task_instance ti ON ti.trigger_id = t.id
     WHERE (($1 AND t.event IS NOT NULL)
            OR ($2 AND t.event IS NULL AND t.triggerer_id IS NULL)
            OR ($3 AND t.event IS NULL AND t.triggerer_id IS NOT NULL))
       AND ($4::uuid IS NULL OR t.triggerer_id = $4)
       AND ($5::text IS NULL OR t.classpath = $5)
       AND ($6::text IS NULL OR t.queue = $6)
       AND ($7::timestamptz IS NULL OR (t.created_at, t.id) > ($7, $8::uuid))
     ORDER BY t.created_at, t.id
     LIMIT $9`,
    [
      want('fired'),
      want('waiting'),
      want('running'),
      f.triggererId ?? null,
      f.type ?? null,
      f.queue ?? null,
      f.after?.createdAt ?? null,
      f.after?.id ?? null,
      f.limit,
    ],
  );
  return rows.map(({ fired, ...r }) => ({ ...r, state: fired ? 'fired' : r.triggerer_id === null ? 'waiting' : 'running' }));
}

/** Unfired triggers (waiting for or held by a triggerer), for the no-triggerer warning (uses trigger_claim_idx). */
export async function unfiredTriggerCount(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger WHERE event IS NULL');
  return rows[0]?.n ?? 0;
}

/** Job rows of processes not known to have ended (uses job_liveness_idx). */
export async function runningJobs(
  db: Queryable,
): Promise<{ id: string; job_type: string; hostname: string; latest_heartbeat: Date; heartbeat_age_ms: number }[]> {
  const { rows } = await db.query<{ id: string; job_type: string; hostname: string; latest_heartbeat: Date; heartbeat_age_ms: number }>(
    `SELECT id, job_type, hostname, latest_heartbeat, (extract(epoch FROM (now() - latest_heartbeat)) * 1000)::float8 AS heartbeat_age_ms
     FROM job WHERE state = ${JOB_RUNNING} ORDER BY job_type, started_at LIMIT 1000`,
  );
  return rows;
}
