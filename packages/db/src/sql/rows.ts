import type { TaskState } from '@deferrable/domain';

/** A task instance as the hot-path statements return it (snake_case columns, as PostgreSQL has them). */
export interface TaskInstanceRow {
  id: string;
  task_name: string;
  args: unknown;
  queue: string;
  priority: number;
  state: TaskState;
  try_number: number;
  max_tries: number;
  retry_delay_ms: number;
  retry_backoff: number;
  retry_max_delay_ms: number;
  execution_timeout_ms: number | null;
  dispatch_attempt: number;
  trigger_id: string | null;
  next_method: string | null;
  next_kwargs: unknown;
  worker_id: string | null;
}

export const TASK_COLUMNS = `id, task_name, args, queue, priority, state, try_number, max_tries, retry_delay_ms,
  retry_backoff, retry_max_delay_ms, execution_timeout_ms, dispatch_attempt, trigger_id, next_method,
  next_kwargs, worker_id`;

/** What a dispatch needs to publish a job. */
export interface DispatchRow {
  id: string;
  try_number: number;
  dispatch_attempt: number;
  queue: string;
  priority: number;
  /** Set when this dispatch resumes a deferred task (its callback runs). */
  next_method: string | null;
}

/** PostgreSQL channels used as wake-up hints (never the only copy of a fact). */
export const CHANNELS = {
  taskScheduled: 'deferrable_task_scheduled',
} as const;

/*
 * Claims and batch transitions pick rows in a CTE (FOR UPDATE SKIP LOCKED) and update them with
 * `id = ANY(ARRAY(SELECT id FROM picked))`: a primary-key lookup whatever the planner believes
 * about the CTE's size. A join against the CTE was planned as a nested loop over a sequential scan
 * when statistics were stale (a freshly filled table), which took seconds for 5,000 rows.
 */
