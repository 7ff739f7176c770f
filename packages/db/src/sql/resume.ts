import type { TaskState } from '@deferrable/domain';
import type { Queryable } from '../client';
import { fromSql, sqlState, toSql } from './states';
import type { DispatchRow } from './rows';

// Applies recorded trigger outcomes. The compare-and-set is on (trigger_id, state = 'deferred'):
// once applied, trigger_id is NULL, so a repeated event matches nothing (at most once per event).
// An event with endTask finishes the task without a worker; a failure resumes into __fail__.
// With $3 (dispatch now), a resumed task is also dispatched in the same statement: it passes
// through `scheduled` to `queued` at once (the audit trigger logs both steps), one round trip
// and one commit on the resume path instead of four.
// Index: task_instance_trigger_idx, then primary-key look-ups (task_instance_pkey, trigger_pkey).
//
// Two ways to pick the rows. By default the statement waits for a row another transaction holds
// and then re-checks it, so after it returns each given event is applied: by this statement, by a
// transaction that committed meanwhile, or it had been already. With SKIP LOCKED (for fired hints,
// which every scheduler hears) a locked row is passed over at once, so schedulers never queue on
// each other nor deadlock; a skipped event may still be unapplied if its holder rolls back, so the
// caller must not take "not returned" for "done" (the trigger-event job applies it then).
// Rows are locked in id order whatever the plan, so two waiting statements cannot deadlock.
// The rows are found by `trigger_id = ANY(...)` on task_instance_trigger_idx, not by a join from
// trigger: the join was planned as a hash join over a sequential scan of task_instance (every
// row version of every task, 20 ms under load in the benchmark). Whether the trigger has fired is
// checked by the UPDATE below; a row locked here whose trigger has not fired is left unchanged.
const pick = (lock: '' | 'SKIP LOCKED') => `
WITH picked AS (
  SELECT id FROM task_instance
  WHERE trigger_id = ANY($1::uuid[]) AND state ${fromSql('resume')}
  ORDER BY id
  FOR UPDATE ${lock}
)`;
const RESUME_SET = `
UPDATE task_instance ti
SET state = CASE
      WHEN t.event->>'kind' = 'event' AND t.event ? 'endTask' THEN (t.event->>'endTask')::task_state
      WHEN $3::boolean THEN ${toSql('dispatch')}
      ELSE ${toSql('resume')} END,
    dispatch_attempt = CASE
      WHEN $3::boolean AND NOT (t.event->>'kind' = 'event' AND t.event ? 'endTask') THEN ti.dispatch_attempt + 1
      ELSE ti.dispatch_attempt END,
    queued_at = CASE
      WHEN $3::boolean AND NOT (t.event->>'kind' = 'event' AND t.event ? 'endTask') THEN now()
      ELSE ti.queued_at END,
    next_method = CASE WHEN t.event->>'kind' = 'failure' THEN '__fail__' ELSE ti.next_method END,
    next_kwargs = CASE
      WHEN t.event->>'kind' = 'failure' THEN jsonb_build_object('error', t.event->'error', 'triggerId', t.id)
      ELSE coalesce(ti.next_kwargs, '{}'::jsonb) || jsonb_build_object('event', t.event->'payload') END,
    result = CASE WHEN t.event ? 'endTask' THEN t.event->'payload' ELSE ti.result END,
    -- A trigger that ends its task as failed leaves the error a failed task must have.
    error = CASE WHEN t.event->>'kind' = 'event' AND (t.event->>'endTask')::task_state = ${toSql('triggerFail')}
      THEN jsonb_build_object('code', 'TRIGGER_FAILED', 'type', 'TriggerFailedError', 'message', 'the trigger ended the task as failed')
      ELSE ti.error END,
    ended_at = CASE WHEN t.event ? 'endTask' THEN now() ELSE NULL END,
    trigger_id = NULL, trigger_timeout = NULL, run_after = now(), updated_at = now(), last_actor = $2
FROM trigger t
WHERE ti.id = ANY(ARRAY(SELECT id FROM picked)) AND t.id = ti.trigger_id AND t.event IS NOT NULL AND ti.state ${fromSql('resume')}
RETURNING ti.id, ti.state, t.id AS trigger_id, ti.try_number, ti.dispatch_attempt, ti.queue, ti.priority, ti.next_method`;
const RESUME = pick('') + RESUME_SET;
const RESUME_SKIP_LOCKED = pick('SKIP LOCKED') + RESUME_SET;

export interface ResumedRow {
  id: string;
  state: TaskState;
  trigger_id: string;
  /** With `dispatch`: the job to publish for a task that went on to `queued`. */
  dispatch?: DispatchRow;
}

/**
 * deferred -> scheduled (or a terminal state) for the tasks waiting on these fired triggers; with
 * `dispatch`, on to queued in the same statement, ready to publish. With `skipLocked`, rows held by
 * another transaction are passed over (see `pick`).
 */
export async function resumeFromTriggers(
  db: Queryable,
  triggerIds: readonly string[],
  actor: string,
  opts: { dispatch?: boolean; skipLocked?: boolean } = {},
): Promise<ResumedRow[]> {
  if (triggerIds.length === 0) return [];
  const sql = opts.skipLocked ? RESUME_SKIP_LOCKED : RESUME;
  const { rows } = await db.query<ResumedRow & Omit<DispatchRow, 'id'>>(sql, [triggerIds, actor, opts.dispatch ?? false]);
  return rows.map((r) => {
    const resumed: ResumedRow = { id: r.id, state: r.state, trigger_id: r.trigger_id };
    if (r.state === 'queued') {
      resumed.dispatch = {
        id: r.id,
        try_number: r.try_number,
        dispatch_attempt: r.dispatch_attempt,
        queue: r.queue,
        priority: r.priority,
        next_method: r.next_method,
      };
    }
    return resumed;
  });
}

// Backstop for trigger-event messages lost in Redis: fired triggers whose task still waits.
// Index: trigger_fired_idx.
const FIRED_UNAPPLIED = `
SELECT t.id FROM trigger t
WHERE t.fired_at IS NOT NULL AND t.fired_at < now() - make_interval(secs => $1::float8 / 1000)
  AND EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = ${sqlState('deferred')})
ORDER BY t.fired_at LIMIT $2`;

export async function firedUnapplied(db: Queryable, olderThanMs: number, limit: number): Promise<string[]> {
  return (await db.query<{ id: string }>(FIRED_UNAPPLIED, [olderThanMs, limit])).rows.map((r) => r.id);
}

// An outcome recorded (fired_at, the recording's time) by the deadline wins even if its event is
// not applied yet (its job or the backstop scan applies it); one recorded later, or never, loses.
// Between this statement and a recording that commits meanwhile, the first commit wins.
// Index: task_instance_trigger_timeout_idx, trigger_pkey.
const TIMEOUT = `
WITH picked AS (
  SELECT ti.id FROM task_instance ti
  WHERE ti.trigger_timeout < now() AND ti.state ${fromSql('resume')}
    AND NOT EXISTS (SELECT 1 FROM trigger t WHERE t.id = ti.trigger_id AND t.fired_at <= ti.trigger_timeout)
  ORDER BY ti.trigger_timeout LIMIT $1
  FOR UPDATE OF ti SKIP LOCKED
)
UPDATE task_instance ti
SET state = ${toSql('resume')}, next_method = '__fail__',
    next_kwargs = jsonb_build_object('error', jsonb_build_object('code', 'TRIGGER_TIMEOUT', 'message', 'deferral timed out'),
                                     'triggerId', ti.trigger_id),
    trigger_id = NULL, trigger_timeout = NULL, run_after = now(), updated_at = now(), last_actor = $2
WHERE ti.id = ANY(ARRAY(SELECT id FROM picked)) AND ti.state ${fromSql('resume')}
RETURNING ti.id`;

/** deferred -> scheduled into __fail__ for deferrals past their timeout. */
export async function timeoutDeferrals(db: Queryable, limit: number, actor: string): Promise<string[]> {
  return (await db.query<{ id: string }>(TIMEOUT, [limit, actor])).rows.map((r) => r.id);
}

// Index: task_instance_dispatch_idx (state, priority, run_after) serves up_for_retry as well.
const RETRIES_DUE = `
WITH picked AS (
  SELECT id FROM task_instance
  WHERE state ${fromSql('retryDue')} AND run_after <= now()
  ORDER BY run_after LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE task_instance ti
SET state = ${toSql('retryDue')}, try_number = ti.try_number + 1, next_method = NULL, next_kwargs = NULL,
    worker_id = NULL, heartbeat_at = NULL, updated_at = now(), last_actor = $2
WHERE ti.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING ti.id`;

/** up_for_retry -> scheduled with the next try number, when the retry delay has passed. */
export async function retriesDue(db: Queryable, limit: number, actor: string): Promise<string[]> {
  return (await db.query<{ id: string }>(RETRIES_DUE, [limit, actor])).rows.map((r) => r.id);
}
