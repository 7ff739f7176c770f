import { CHANNELS } from '@deferrable/db';
import { z } from 'zod';

/**
 * The benchmark's own statements. They read the state of record after a run; only ENQUEUE and
 * PROGRESS run during the measurement.
 */

// $1 task name, $2 int[] of delays. One INSERT per chunk (the audit trigger logs each row's
// `-> scheduled`), and one wake-up for the scheduler, delivered at commit.
export const ENQUEUE = `
WITH ins AS (
  INSERT INTO task_instance (id, task_name, args, state, last_actor)
  SELECT gen_random_uuid(), $1, jsonb_build_object('delayMs', d), 'scheduled', 'bench'
  FROM unnest($2::int[]) AS d
  RETURNING id
)
SELECT (SELECT count(*) FROM ins)::int AS inserted, pg_notify('${CHANNELS.taskScheduled}', '') IS NULL AS notified`;

// The scheduler deletes triggers no task waits on (every DEFERRABLE_CLEANUP_INTERVAL_MS), which
// would take fired_at with them: keep a copy of each deleted fired trigger, one INSERT per DELETE
// statement (a transition table), so the cleanup runs at its production interval.
export const KEEP_FIRED_TRIGGERS = `
CREATE TABLE bench_fired (id uuid PRIMARY KEY, fired_at timestamptz(3), event jsonb);
CREATE FUNCTION bench_keep_fired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_fired SELECT id, fired_at, event FROM gone WHERE fired_at IS NOT NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER bench_keep_fired AFTER DELETE ON trigger REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION bench_keep_fired();`;

// With --retention the scheduler deletes finished task instances (and, by cascade, their
// transitions) during the run: keep a copy of each, row by row before it goes, so that the run is
// still measured from the state of record. Without --retention nothing is deleted and the copies
// stay empty.
export const KEEP_DELETED_TASKS = `
CREATE TABLE bench_deleted_task (id uuid PRIMARY KEY, state task_state, dispatch_attempt int);
CREATE TABLE bench_deleted_transition (LIKE task_transition);
CREATE FUNCTION bench_keep_deleted_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_deleted_task VALUES (OLD.id, OLD.state, OLD.dispatch_attempt);
  INSERT INTO bench_deleted_transition SELECT * FROM task_transition WHERE task_instance_id = OLD.id;
  RETURN OLD;
END $$;
CREATE TRIGGER bench_keep_deleted_task BEFORE DELETE ON task_instance
FOR EACH ROW EXECUTE FUNCTION bench_keep_deleted_task();`;

const TASKS = `(SELECT id, state, dispatch_attempt FROM task_instance UNION ALL SELECT id, state, dispatch_attempt FROM bench_deleted_task)`;
const TRANSITIONS = `(SELECT task_instance_id, from_state, to_state, at FROM task_transition
                     UNION ALL SELECT task_instance_id, from_state, to_state, at FROM bench_deleted_transition)`;

/** The tables retention keeps bounded, counted (during the run only with --retention). */
export const TABLE_ROWS = `
SELECT (SELECT count(*) FROM task_instance)::int AS task_instance, (SELECT count(*) FROM task_transition)::int AS task_transition,
       (SELECT count(*) FROM job)::int AS job, (SELECT count(*) FROM rejection)::int AS rejection`;
export const TableRows = z.object({ task_instance: z.number(), task_transition: z.number(), job: z.number(), rejection: z.number() });
export type TableRows = z.infer<typeof TableRows>;

const FIRED = `(SELECT id, fired_at, event FROM trigger WHERE fired_at IS NOT NULL
               UNION ALL SELECT id, fired_at, event FROM bench_fired)`;

// Polled during the measurement, so kept cheap: two probes of task_instance_dispatch_idx (state
// leads) instead of counting the table.
export const PROGRESS = `
SELECT EXISTS (SELECT 1 FROM task_instance WHERE state IN ('scheduled', 'queued', 'running', 'deferred', 'up_for_retry')) AS pending,
       EXISTS (SELECT 1 FROM ${TASKS} t WHERE state IN ('failed', 'cancelled', 'skipped')) AS failed`;

export const COUNT_SUCCEEDED = `SELECT count(*)::int AS n FROM ${TASKS} t WHERE state = 'success'`;

/**
 * One row per task with the instants (epoch ms, float) of its resume path. The trigger is found by
 * the task id its event carries (bench fixture), since the resume cleared task_instance.trigger_id.
 *   run1       the first queued -> running (execute starts)
 *   deferred   running -> deferred (the deferral committed)
 *   due        the timer's moment (event payload, set when execute deferred)
 *   fired      when the triggerer's timer callback ran (event payload, triggerer clock)
 *   recorded   trigger.fired_at: now() of the statement that recorded the event (ms precision),
 *              from the trigger row or, once the scheduler's cleanup deleted it, from bench_fired
 *   applied    task_transition deferred -> scheduled (clock_timestamp(), us precision)
 *   queued2    the second scheduled -> queued
 *   run2       the second queued -> running: the callback starting
 *   succeeded  running -> success
 */
export const RESUME_PATH = `
WITH tr AS (
  SELECT task_instance_id AS id,
    array_agg(at ORDER BY at) FILTER (WHERE from_state = 'queued' AND to_state = 'running') AS runs,
    array_agg(at ORDER BY at) FILTER (WHERE from_state = 'scheduled' AND to_state = 'queued') AS queues,
    min(at) FILTER (WHERE to_state = 'deferred') AS deferred,
    min(at) FILTER (WHERE from_state = 'deferred' AND to_state = 'scheduled') AS applied,
    max(at) FILTER (WHERE to_state = 'success') AS succeeded
  FROM ${TRANSITIONS} tt GROUP BY task_instance_id
)
SELECT
  extract(epoch FROM (t.event->'payload'->>'moment')::timestamptz)::float8 * 1000 AS due,
  extract(epoch FROM (t.event->'payload'->>'firedAt')::timestamptz)::float8 * 1000 AS fired,
  extract(epoch FROM t.fired_at)::float8 * 1000 AS recorded,
  extract(epoch FROM tr.runs[1])::float8 * 1000 AS run1,
  extract(epoch FROM tr.deferred)::float8 * 1000 AS deferred,
  extract(epoch FROM tr.applied)::float8 * 1000 AS applied,
  extract(epoch FROM tr.queues[2])::float8 * 1000 AS queued2,
  extract(epoch FROM tr.runs[2])::float8 * 1000 AS run2,
  extract(epoch FROM tr.succeeded)::float8 * 1000 AS succeeded,
  coalesce(array_length(tr.runs, 1), 0) AS runs
FROM tr LEFT JOIN ${FIRED} t ON (t.event->'payload'->>'taskInstanceId')::uuid = tr.id`;

const instant = z.number().nullable();
export const ResumePathRow = z.object({
  due: instant,
  fired: instant,
  recorded: instant,
  run1: instant,
  deferred: instant,
  applied: instant,
  queued2: instant,
  run2: instant,
  succeeded: instant,
  runs: z.number().int(),
});
export type ResumePathRow = z.infer<typeof ResumePathRow>;

// BullMQ jobs the run published: one dispatch job per dispatch attempt, one event job per trigger.
export const JOBS_PUBLISHED = `
SELECT (SELECT coalesce(sum(dispatch_attempt), 0) FROM ${TASKS} t)::int AS dispatch_jobs,
       (SELECT count(*) FROM ${FIRED} f)::int AS event_jobs`;

export const JobsPublished = z.object({ dispatch_jobs: z.number(), event_jobs: z.number() });

// Cumulative counters; read only after the apps' backends exited (a backend flushes its
// statistics at exit, otherwise up to seconds later).
export const DB_COUNTERS = `
SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database())::float8 AS xacts,
       (SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database())::float8 AS rollbacks,
       coalesce((SELECT json_object_agg(relname, json_build_object('ins', n_tup_ins, 'upd', n_tup_upd, 'del', n_tup_del, 'hot', n_tup_hot_upd))
                 FROM pg_stat_user_tables), '{}'::json) AS tables`;

export const DbCounters = z.object({
  xacts: z.number(),
  rollbacks: z.number(),
  tables: z.record(z.string(), z.object({ ins: z.number(), upd: z.number(), del: z.number(), hot: z.number() })),
});
export type DbCounters = z.infer<typeof DbCounters>;

export const BACKEND_PIDS = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;

export const RUNNING_JOBS = `SELECT job_type, count(*)::int AS n FROM job WHERE state = 'running' GROUP BY job_type`;
