import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { Pool } from 'pg';
import { count, insertTask, insertTrigger, testResources } from '../__tests__/fixtures';
import { Retention, type RetentionOptions } from './retention';

const DAY = 24 * 3600 * 1000;
const WEEK = 7 * DAY;

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('retention');
});
afterEach(() => env.db.pool.query('TRUNCATE task_instance, trigger, task_type_registration, job, rejection CASCADE'));
afterAll(() => env.cleanup());

function retention(over: Partial<RetentionOptions> = {}, res = testResources(env)): Retention {
  return new Retention(res, { taskRetentionMs: WEEK, jobRetentionMs: WEEK, rejectionRetentionMs: WEEK, batch: 100, maxBatchesPerRun: 10, ...over });
}

async function insertJob(f: { state: string; heartbeatAgoMs: number; endedAgoMs: number | null; jobType?: string }): Promise<string> {
  const id = randomUUID();
  await env.db.pool.query(
    `INSERT INTO job (id, job_type, hostname, pid, state, started_at, latest_heartbeat, ended_at)
     VALUES ($1, $2, 'h', 1, $3, now() - interval '30 days', now() - make_interval(secs => $4::float8 / 1000),
             CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $5::float8 / 1000) END)`,
    [id, f.jobType ?? 'worker', f.state, f.heartbeatAgoMs, f.endedAgoMs],
  );
  return id;
}

async function insertRejection(agoMs: number): Promise<void> {
  await env.db.pool.query(`INSERT INTO rejection (source, reason, created_at) VALUES ('test', 'bad', now() - make_interval(secs => $1::float8 / 1000))`, [
    agoMs,
  ]);
}

test('old finished tasks (with their transitions), old job rows and old rejections are deleted; live and recent rows never are', async () => {
  const db = env.db.pool;
  const oldFinished = [];
  for (const state of ['success', 'failed', 'skipped', 'cancelled'] as const) oldFinished.push(await insertTask(db, { state, endedAgoMs: WEEK + DAY }));
  const recentFinished = await insertTask(db, { state: 'success', endedAgoMs: DAY });
  // Rows in flight are kept however old their timestamps (an ended_at on one would be a bug elsewhere).
  const live = [];
  for (const state of ['scheduled', 'queued', 'running', 'deferred', 'up_for_retry'] as const)
    live.push(await insertTask(db, { state, endedAgoMs: WEEK + DAY }));
  const keptTasks = [recentFinished, ...live];

  const endedLongAgo = await insertJob({ state: 'success', heartbeatAgoMs: WEEK + DAY, endedAgoMs: WEEK + DAY });
  // Killed with kill -9: its row still says running, its heartbeat stopped long ago.
  const killed = await insertJob({ state: 'running', heartbeatAgoMs: WEEK + DAY, endedAgoMs: null, jobType: 'triggerer' });
  const running = await insertJob({ state: 'running', heartbeatAgoMs: 0, endedAgoMs: null });
  const endedRecently = await insertJob({ state: 'success', heartbeatAgoMs: DAY, endedAgoMs: DAY });
  // A trigger still naming the killed triggerer does not stop its row going (no foreign key).
  const trigger = await insertTrigger(db, { triggererId: killed });

  await insertRejection(WEEK + DAY);
  await insertRejection(WEEK + DAY);
  await insertRejection(DAY);

  const r = retention();
  expect(await r.run()).toEqual({ more: false });
  expect(r.deleted).toEqual({ tasks: 4, jobs: 2, rejections: 2 });

  expect(await count(db, 'task_instance WHERE id = ANY($1::uuid[])', [oldFinished])).toBe(0);
  expect(await count(db, 'task_transition WHERE task_instance_id = ANY($1::uuid[])', [oldFinished])).toBe(0);
  expect(await count(db, 'task_instance WHERE id = ANY($1::uuid[])', [keptTasks])).toBe(keptTasks.length);
  expect(await count(db, 'task_transition WHERE task_instance_id = ANY($1::uuid[])', [keptTasks])).toBe(keptTasks.length);
  expect(await count(db, 'job WHERE id = ANY($1::uuid[])', [[endedLongAgo, killed]])).toBe(0);
  expect(await count(db, 'job WHERE id = ANY($1::uuid[])', [[running, endedRecently]])).toBe(2);
  expect(await count(db, 'trigger WHERE id = $1 AND triggerer_id = $2', [trigger, killed])).toBe(1);
  expect(await count(db, 'rejection')).toBe(1);
});

test('deletes in small batches: a run with more than its share left says so, and later runs finish the work', async () => {
  for (let i = 0; i < 7; i++) await insertTask(env.db.pool, { state: 'success', endedAgoMs: WEEK + DAY });
  const r = retention({ batch: 2, maxBatchesPerRun: 2 });
  expect(await r.run()).toEqual({ more: true });
  expect(await count(env.db.pool, 'task_instance')).toBe(3);
  expect(await r.run()).toEqual({ more: false });
  expect(await count(env.db.pool, 'task_instance')).toBe(0);
});

test('a finished row another transaction holds is skipped without waiting; the others are deleted', async () => {
  const held = await insertTask(env.db.pool, { state: 'success', endedAgoMs: WEEK + DAY });
  const other = await insertTask(env.db.pool, { state: 'failed', endedAgoMs: WEEK + DAY });
  const holder = await env.db.pool.connect();
  // Retention's own connection gives up on any lock wait: waiting would fail the run.
  const pool = new Pool({ connectionString: env.databaseUrl, max: 1, options: '-c lock_timeout=200' });
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM task_instance WHERE id = $1 FOR UPDATE', [held]);
    const r = retention({}, testResources(env, { db: { pool, prisma: env.db.prisma, close: () => pool.end() } }));
    expect(await r.run()).toEqual({ more: false });
    expect(await count(env.db.pool, 'task_instance WHERE id = $1', [other])).toBe(0);
    expect(await count(env.db.pool, 'task_instance WHERE id = $1', [held])).toBe(1);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    holder.release();
    await pool.end();
  }
});
