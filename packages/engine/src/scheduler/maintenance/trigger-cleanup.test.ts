import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { Pool } from 'pg';
import { count, insertDeferred, insertTask, insertTrigger, testResources } from '../__tests__/fixtures';
import { Maintenance } from '.';
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

test('in the scheduler, cleanup runs at its own interval, not again as soon as a run deleted something', async () => {
  await env.db.pool.query('TRUNCATE trigger CASCADE');
  for (let i = 0; i < 3; i++) await insertTrigger(env.db.pool);
  let passes = 0;
  // Calls through to the real cleanup, counting its runs.
  const cleanupSpy = jest.spyOn(TriggerCleanup.prototype, 'run');
  const maintenance = new Maintenance(
    testResources(env),
    {
      pollMs: 20,
      batch: 100,
      reapAfterMs: 60_000,
      redispatchAfterMs: 60_000,
      redispatchChecksPerRun: 10,
      cleanupIntervalMs: 3_600_000,
      retention: { taskRetentionMs: 0, jobRetentionMs: 0, rejectionRetentionMs: 0, intervalMs: 3_600_000, batch: 100, maxBatchesPerRun: 1 },
      actor: 'test',
    },
    { dispatchNow: async () => undefined, wake: () => (passes += 1), publish: async () => undefined, jobState: async () => 'unknown' },
  );
  try {
    maintenance.start();
    // Twenty passes of the 20 ms maintenance loop: long enough for a cleanup loop that reran
    // every few milliseconds to have run many times; at its hourly interval it runs once.
    await waitFor(() => passes >= 20, 20_000, '20 maintenance passes');
    await maintenance.stop();
    expect(cleanupSpy).toHaveBeenCalledTimes(1);
  } finally {
    await maintenance.stop();
    cleanupSpy.mockRestore();
  }
  expect(await count(env.db.pool, 'trigger')).toBe(0);
});
