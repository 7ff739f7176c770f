import type { Queryable } from '../client';
import { fromSql, sqlState, toSql } from './states';
import { TASK_COLUMNS, type TaskInstanceRow } from './rows';

// All statements here are primary-key updates guarded by the expected state, try and worker:
// a repeated or late message, or a worker that lost its task to the reaper, changes nothing.
//
// Each takes a batch: a worker records the steps of all its slots together (one statement and one
// commit for everything that finished in the same moment), since one synchronous commit per task
// per step is what capped throughput (bench/RESULTS.md). A single step is a batch of one. Keys are
// passed as parallel arrays and joined with unnest, so the statement text never changes; the
// extra `ti.id = ANY($1)` makes the planner fetch the rows by primary key rather than hash-join
// the batch against every row in the state's partial index.

const START = `
UPDATE task_instance ti
SET state = ${toSql('start')}, worker_id = k.worker_id, heartbeat_at = now(), started_at = coalesce(ti.started_at, now()),
    updated_at = now(), last_actor = k.actor
FROM unnest($1::uuid[], $2::int[], $3::int[], $4::uuid[], $5::text[]) AS k(id, try_number, dispatch_attempt, worker_id, actor)
WHERE ti.id = ANY($1::uuid[]) AND ti.id = k.id AND ti.state ${fromSql('start')} AND ti.try_number = k.try_number
  AND ti.dispatch_attempt = k.dispatch_attempt
RETURNING ${TASK_COLUMNS.split(',')
  .map((c) => `ti.${c.trim()}`)
  .join(', ')}`;

export interface StartKey {
  id: string;
  tryNumber: number;
  dispatchAttempt: number;
  workerId: string;
  actor: string;
}

/**
 * queued -> running for exactly these tries and dispatch attempts. Each key gets its row, or null
 * when another got there first. A key repeated within the batch wins at most once.
 */
export async function startRuns(db: Queryable, keys: readonly StartKey[]): Promise<(TaskInstanceRow | null)[]> {
  if (keys.length === 0) return [];
  // PostgreSQL returns uuids in lower case; a key given in upper case must still find its row.
  const ids = keys.map((k) => k.id.toLowerCase());
  const { rows } = await db.query<TaskInstanceRow>(START, [
    ids,
    keys.map((k) => k.tryNumber),
    keys.map((k) => k.dispatchAttempt),
    keys.map((k) => k.workerId),
    keys.map((k) => k.actor),
  ]);
  const started = new Map(rows.map((r) => [r.id, r]));
  return keys.map((k, i) => {
    const row = started.get(ids[i]!);
    if (!row || row.try_number !== k.tryNumber || row.dispatch_attempt !== k.dispatchAttempt || row.worker_id !== k.workerId.toLowerCase()) return null;
    started.delete(ids[i]!); // the same dispatch twice in one batch: only the first runs it
    return row;
  });
}

/** queued -> running for exactly this try and dispatch attempt; null when another got there first. */
export async function startRun(db: Queryable, key: StartKey): Promise<TaskInstanceRow | null> {
  return (await startRuns(db, [key]))[0] ?? null;
}

export interface RunKey {
  id: string;
  tryNumber: number;
  workerId: string;
  actor: string;
}

/**
 * A run as a deferral names it: a resume keeps the try number, and the resumed run may start on
 * the same worker, so only the dispatch attempt (raised by every dispatch) tells a deferral sent
 * again after a lost reply from the run that the resume started since.
 */
export type DeferKey = RunKey & { dispatchAttempt: number };

const runOf = (id: string, tryNumber: number, workerId: string) => `${id.toLowerCase()}:${tryNumber}:${workerId.toLowerCase()}`;

/** Matches the runs a statement changed to its keys; a key repeated in the batch matches once. */
function matched(keys: readonly RunKey[], changed: readonly { id: string; try_number: number; worker_id: string }[]): boolean[] {
  const left = new Set(changed.map((r) => runOf(r.id, r.try_number, r.worker_id)));
  return keys.map((k) => left.delete(runOf(k.id, k.tryNumber, k.workerId)));
}

const SUCCEED = `
UPDATE task_instance ti
SET state = ${toSql('succeed')}, result = k.result::jsonb, error = NULL, ended_at = now(), updated_at = now(), last_actor = k.actor,
    next_method = NULL, next_kwargs = NULL
FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::text[]) AS k(id, try_number, worker_id, result, actor)
WHERE ti.id = ANY($1::uuid[]) AND ti.id = k.id AND ti.state ${fromSql('succeed')} AND ti.try_number = k.try_number AND ti.worker_id = k.worker_id
RETURNING ti.id, ti.try_number, k.worker_id`;

/** running -> success with each run's result; true for each run that was still this worker's. */
export async function succeedRuns(db: Queryable, runs: readonly { key: RunKey; result: unknown }[]): Promise<boolean[]> {
  if (runs.length === 0) return [];
  const { rows } = await db.query<{ id: string; try_number: number; worker_id: string }>(SUCCEED, [
    runs.map((r) => r.key.id),
    runs.map((r) => r.key.tryNumber),
    runs.map((r) => r.key.workerId),
    runs.map((r) => JSON.stringify(r.result ?? null)),
    runs.map((r) => r.key.actor),
  ]);
  return matched(
    runs.map((r) => r.key),
    rows,
  );
}

export async function succeedRun(db: Queryable, k: RunKey, result: unknown): Promise<boolean> {
  return (await succeedRuns(db, [{ key: k, result }]))[0] ?? false;
}

const FAIL = `
UPDATE task_instance
SET state = CASE WHEN $5::float8 IS NULL THEN ${toSql('fail')} ELSE ${toSql('scheduleRetry')} END, error = $4, updated_at = now(), last_actor = $6,
    run_after = CASE WHEN $5::float8 IS NULL THEN run_after ELSE now() + make_interval(secs => $5::float8 / 1000) END,
    ended_at = CASE WHEN $5::float8 IS NULL THEN now() ELSE NULL END
WHERE id = $1 AND state ${fromSql('fail')} AND try_number = $2 AND worker_id = $3
RETURNING id`;

/** running -> up_for_retry (retryInMs given) or failed (retryInMs null). */
export async function failRun(db: Queryable, k: RunKey, error: unknown, retryInMs: number | null): Promise<boolean> {
  const { rowCount } = await db.query(FAIL, [k.id, k.tryNumber, k.workerId, JSON.stringify(error), retryInMs, k.actor]);
  return rowCount === 1;
}

export interface NewTrigger {
  id: string;
  classpath: string;
  /** Already encrypted. */
  kwargsToken: string;
  queue: string | null;
}

export interface Deferral {
  trigger: NewTrigger;
  nextMethod: string;
  nextKwargs: unknown;
  timeoutMs: number | null;
}

// One statement, so each trigger row and its task's deferred state commit together or not at all:
// a trigger is inserted only when its task's compare-and-set matched (the INSERT joins upd). The
// foreign key is checked at the end of the statement, when both rows exist. No NOTIFY here: it
// would serialise every deferral's commit; the worker sends a Redis hint instead.
const DEFER = `
WITH k AS (
  SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[])
    AS k(id, try_number, worker_id, trigger_id, next_method, next_kwargs, timeout_ms, classpath, kwargs, queue, actor, dispatch_attempt)
), upd AS (
  UPDATE task_instance ti
  SET state = ${toSql('defer')}, trigger_id = k.trigger_id, next_method = k.next_method, next_kwargs = k.next_kwargs::jsonb,
      trigger_timeout = CASE WHEN k.timeout_ms IS NULL THEN NULL ELSE now() + make_interval(secs => k.timeout_ms / 1000) END,
      worker_id = NULL, heartbeat_at = NULL, updated_at = now(), last_actor = k.actor
  FROM k
  WHERE ti.id = ANY($1::uuid[]) AND ti.id = k.id AND ti.state ${fromSql('defer')} AND ti.try_number = k.try_number AND ti.worker_id = k.worker_id
    AND ti.dispatch_attempt = k.dispatch_attempt
  RETURNING ti.trigger_id
), trg AS (
  INSERT INTO trigger (id, classpath, kwargs, queue)
  SELECT k.trigger_id, k.classpath, k.kwargs, k.queue FROM k JOIN upd ON upd.trigger_id = k.trigger_id
  RETURNING id
)
SELECT id AS trigger_id FROM trg`;

/** running -> deferred, each with its new trigger, atomically. False for a run no longer ours. */
export async function deferRuns(db: Queryable, runs: readonly { key: DeferKey; deferral: Deferral }[]): Promise<boolean[]> {
  if (runs.length === 0) return [];
  const { rows } = await db.query<{ trigger_id: string }>(DEFER, [
    runs.map((r) => r.key.id),
    runs.map((r) => r.key.tryNumber),
    runs.map((r) => r.key.workerId),
    runs.map((r) => r.deferral.trigger.id),
    runs.map((r) => r.deferral.nextMethod),
    runs.map((r) => JSON.stringify(r.deferral.nextKwargs ?? {})),
    runs.map((r) => r.deferral.timeoutMs),
    runs.map((r) => r.deferral.trigger.classpath),
    runs.map((r) => r.deferral.trigger.kwargsToken),
    runs.map((r) => r.deferral.trigger.queue),
    runs.map((r) => r.key.actor),
    runs.map((r) => r.key.dispatchAttempt),
  ]);
  // Each deferral has its own new trigger id: the inserted triggers say which deferrals matched.
  const inserted = new Set(rows.map((r) => r.trigger_id));
  return runs.map((r) => inserted.delete(r.deferral.trigger.id));
}

/** running -> deferred with a new trigger, atomically. False when the run was no longer ours. */
export async function deferRun(db: Queryable, k: DeferKey, d: Deferral): Promise<boolean> {
  return (await deferRuns(db, [{ key: k, deferral: d }]))[0] ?? false;
}

// Only the runs the worker has in hand: a row left `running` under this worker that it does not
// know of (its start committed but the answer was lost with the connection) stops being
// heartbeated, so the reaper takes it back instead of it staying running for good.
// Index: the primary key (ids given).
const HEARTBEAT = `
UPDATE task_instance SET heartbeat_at = now()
WHERE id = ANY($2::uuid[]) AND state = ${sqlState('running')} AND worker_id = $1
RETURNING id, try_number`;

/** Heartbeats these runs of this worker; returns the ones it still holds. */
export async function heartbeatRuns(db: Queryable, workerId: string, ids: readonly string[]): Promise<{ id: string; try_number: number }[]> {
  if (ids.length === 0) return [];
  return (await db.query<{ id: string; try_number: number }>(HEARTBEAT, [workerId, ids])).rows;
}
