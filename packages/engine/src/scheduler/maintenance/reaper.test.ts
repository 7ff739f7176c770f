import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { insertTask, taskRow, testResources } from '../__tests__/fixtures';
import { Dispatcher } from '../dispatcher';
import { Reaper } from './reaper';
import { Retries } from './retries';

let env: TestEnv;
let dispatcher: Dispatcher;
let reaper: Reaper;
beforeAll(async () => {
  env = await createTestEnv('reaper');
  const res = testResources(env);
  dispatcher = new Dispatcher(res, { pollMs: 60_000, dispatchBatch: 100, dispatchAhead: 1000, workersAliveWithinMs: 30_000, actor: 'test' });
  reaper = new Reaper(res, { reapAfterMs: 30_000, batch: 100, actor: 'test' }, new Retries(res, { batch: 100, actor: 'test' }, dispatcher));
});
afterEach(() => env.db.pool.query('TRUNCATE task_instance CASCADE'));
afterAll(async () => {
  await dispatcher.close();
  await env.cleanup();
});

test('a run whose worker stopped heartbeating is retried when tries remain, failed otherwise; a live one is left', async () => {
  const retried = await insertTask(env.db.pool, { state: 'running', workerId: randomUUID(), heartbeatAgoMs: 60_000, maxTries: 2, dispatchAttempt: 1 });
  const failed = await insertTask(env.db.pool, { state: 'running', workerId: randomUUID(), heartbeatAgoMs: 60_000, maxTries: 1, dispatchAttempt: 1 });
  const live = await insertTask(env.db.pool, { state: 'running', workerId: randomUUID(), heartbeatAgoMs: 1000, dispatchAttempt: 1 });
  expect(await reaper.run()).toBe(2);
  // The retry has no delay here (retry_delay_ms 0): scheduled and dispatched in the same run.
  expect(await taskRow(env.db.pool, retried)).toMatchObject({ state: 'queued', try_number: 2 });
  const f = await taskRow(env.db.pool, failed);
  expect(f.state).toBe('failed');
  expect(f.error).toMatchObject({ code: 'HEARTBEAT_LOST' });
  expect((await taskRow(env.db.pool, live)).state).toBe('running');
});

test('a stale run with no worker id is reaped along with the others (it must not fail the batch)', async () => {
  const noWorker = await insertTask(env.db.pool, { state: 'running', workerId: null, heartbeatAgoMs: 120_000, maxTries: 1, dispatchAttempt: 1 });
  const normal = await insertTask(env.db.pool, { state: 'running', workerId: randomUUID(), heartbeatAgoMs: 60_000, maxTries: 1, dispatchAttempt: 1 });
  expect(await reaper.run()).toBe(2);
  expect((await taskRow(env.db.pool, noWorker)).state).toBe('failed');
  expect((await taskRow(env.db.pool, normal)).state).toBe('failed');
});
