import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { Pool } from 'pg';
import { count, insertDeferred, insertTask, insertTrigger, testResources } from '../__tests__/fixtures';
import { TriggerCleanup } from './trigger-cleanup';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('triggercleanup');
});
afterAll(() => env.cleanup());

test('triggers no deferred task waits on are deleted; a waited-on one stays', async () => {
  const waited = await insertDeferred(env.db.pool);
  const orphan = await insertTrigger(env.db.pool);
  // A task that moved on (resumed, cancelled) no longer waits on its old trigger.
  const left = await insertTrigger(env.db.pool, { event: { kind: 'event', payload: null } });
  await insertTask(env.db.pool, { state: 'success', triggerId: left });
  expect(await new TriggerCleanup(testResources(env), { batch: 100 }).run()).toBe(2);
  expect(await count(env.db.pool, 'trigger')).toBe(1);
  expect(await count(env.db.pool, 'trigger WHERE id = $1', [waited.triggerId])).toBe(1);
  expect(await count(env.db.pool, 'trigger WHERE id = ANY($1::uuid[])', [[orphan, left]])).toBe(0);
});

test('a trigger another transaction holds is skipped without waiting; the other orphans are deleted', async () => {
  await env.db.pool.query('TRUNCATE trigger CASCADE');
  const held = await insertTrigger(env.db.pool);
  const others = [await insertTrigger(env.db.pool), await insertTrigger(env.db.pool)];
  const holder = await env.db.pool.connect();
  // The cleanup's own connection gives up on any lock wait: waiting would fail the run.
  const pool = new Pool({ connectionString: env.databaseUrl, max: 1, options: '-c lock_timeout=200' });
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM trigger WHERE id = $1 FOR UPDATE', [held]);
    const res = testResources(env, { db: { pool, prisma: env.db.prisma, close: () => pool.end() } });
    expect(await new TriggerCleanup(res, { batch: 100 }).run()).toBe(2);
    expect(await count(env.db.pool, 'trigger WHERE id = ANY($1::uuid[])', [others])).toBe(0);
    await holder.query('ROLLBACK');
    expect(await new TriggerCleanup(res, { batch: 100 }).run()).toBe(1);
    expect(await count(env.db.pool, 'trigger')).toBe(0);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    holder.release();
    await pool.end();
  }
});
