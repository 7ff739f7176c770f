import { randomUUID } from 'node:crypto';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createKwargsCipher, type Queryable } from '@deferrable/db';
import type { TaskState } from '@deferrable/domain';
import { silentLogger } from '@deferrable/logging';
import { systemClock } from '@deferrable/triggers';
import type { TestEnv } from '@deferrable/testkit';
import type { Resources } from '../../resources';

/** The resources of an in-process scheduler module, on a test's own database and Redis prefix. */
export function testResources(env: TestEnv, over: Partial<Resources> = {}): Resources {
  return {
    db: env.db,
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    clock: systemClock,
    logger: silentLogger(),
    cipher: createKwargsCipher([DEV_KWARGS_KEY]),
    ...over,
  };
}

export interface TaskFields {
  state: TaskState;
  queue?: string;
  tryNumber?: number;
  maxTries?: number;
  dispatchAttempt?: number;
  nextMethod?: string | null;
  triggerId?: string | null;
  /** trigger_timeout = now() - this (negative: in the future). */
  timeoutAgoMs?: number | null;
  workerId?: string | null;
  /** heartbeat_at = now() - this. */
  heartbeatAgoMs?: number | null;
  /** queued_at = now() - this. */
  queuedAgoMs?: number | null;
  /** run_after = now() - this (negative: in the future). */
  runAfterAgoMs?: number;
  /** ended_at = now() - this. */
  endedAgoMs?: number | null;
  priority?: number;
}

const ago = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : ms);

/** Writes one task instance in any state, as the lifecycle would have left it. */
export async function insertTask(db: Queryable, f: TaskFields): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO task_instance (id, task_name, args, queue, priority, state, try_number, max_tries, retry_delay_ms, dispatch_attempt,
       next_method, trigger_id, trigger_timeout, worker_id, heartbeat_at, queued_at, run_after, ended_at, last_actor)
     VALUES ($1, 'test.task', '{}', $2, $3, $4, $5, $6, 0, $7, $8, $9,
       now() - make_interval(secs => $10::float8 / 1000), $11, now() - make_interval(secs => $12::float8 / 1000),
       now() - make_interval(secs => $13::float8 / 1000), now() - make_interval(secs => $14::float8 / 1000),
       now() - make_interval(secs => $15::float8 / 1000), 'test')`,
    [
      id,
      f.queue ?? 'default',
      f.priority ?? 0,
      f.state,
      f.tryNumber ?? 1,
      f.maxTries ?? 1,
      f.dispatchAttempt ?? 0,
      f.nextMethod ?? null,
      f.triggerId ?? null,
      ago(f.timeoutAgoMs),
      f.workerId ?? null,
      ago(f.heartbeatAgoMs),
      ago(f.queuedAgoMs),
      f.runAfterAgoMs ?? 0,
      ago(f.endedAgoMs),
    ],
  );
  return id;
}

/** Writes a trigger row; with `event`, as fired `firedAgoMs` ago. */
export async function insertTrigger(db: Queryable, f: { event?: unknown; firedAgoMs?: number; triggererId?: string | null } = {}): Promise<string> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO trigger (id, classpath, kwargs, triggerer_id, event, fired_at)
     VALUES ($1, 'timer', 'v1.x.y', $2, $3, CASE WHEN $3::jsonb IS NULL THEN NULL ELSE now() - make_interval(secs => $4::float8 / 1000) END)`,
    [id, f.triggererId ?? null, f.event === undefined ? null : JSON.stringify(f.event), f.firedAgoMs ?? 0],
  );
  return id;
}

/** A deferred task waiting on a new trigger (fired, when `event` is given). */
export async function insertDeferred(
  db: Queryable,
  f: { event?: unknown; firedAgoMs?: number; timeoutAgoMs?: number | null; queue?: string } = {},
): Promise<{ id: string; triggerId: string }> {
  const triggerId = await insertTrigger(db, f);
  const id = await insertTask(db, { state: 'deferred', triggerId, nextMethod: 'resume', timeoutAgoMs: f.timeoutAgoMs ?? null, queue: f.queue ?? 'default' });
  return { id, triggerId };
}

export interface TaskRow {
  id: string;
  state: TaskState;
  try_number: number;
  dispatch_attempt: number;
  next_method: string | null;
  next_kwargs: Record<string, unknown> | null;
  trigger_id: string | null;
  error: Record<string, unknown> | null;
}

export async function taskRow(db: Queryable, id: string): Promise<TaskRow> {
  const { rows } = await db.query<TaskRow>('SELECT * FROM task_instance WHERE id = $1', [id]);
  if (!rows[0]) throw new Error(`no task ${id}`);
  return rows[0];
}

export async function count(db: Queryable, from: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`, params);
  return rows[0]!.n;
}
