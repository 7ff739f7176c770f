import { Producer, taskDispatch } from '@deferrable/queues';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { insertTask, taskRow, testResources } from '../__tests__/fixtures';
import { Dispatcher } from '../dispatcher';
import { Redispatch } from './redispatch';

let env: TestEnv;
let dispatcher: Dispatcher;
let jobs: Producer<typeof taskDispatch.schema, string>;
beforeAll(async () => {
  env = await createTestEnv('redispatch');
  dispatcher = new Dispatcher(testResources(env), { pollMs: 60_000, dispatchBatch: 100, dispatchAhead: 1000, workersAliveWithinMs: 30_000, actor: 'test' });
  jobs = new Producer(taskDispatch, env.redisUrl, env.prefix);
});
afterAll(async () => {
  await Promise.all([dispatcher.close(), jobs.close()]);
  await env.cleanup();
});

test('a long-queued task whose job Redis lost is dispatched again; one whose job waits is left', async () => {
  const lost = await insertTask(env.db.pool, { state: 'queued', dispatchAttempt: 1, queuedAgoMs: 60_000 });
  const waiting = await insertTask(env.db.pool, { state: 'queued', dispatchAttempt: 1, queuedAgoMs: 60_000 });
  const recent = await insertTask(env.db.pool, { state: 'queued', dispatchAttempt: 1, queuedAgoMs: 0 });
  await jobs.add('default', { taskInstanceId: waiting, tryNumber: 1, dispatchAttempt: 1 });
  const redispatch = new Redispatch(testResources(env), { redispatchAfterMs: 10_000, batch: 100, actor: 'test' }, dispatcher);
  expect(await redispatch.run()).toBe(1);
  expect(await taskRow(env.db.pool, lost)).toMatchObject({ state: 'queued', dispatch_attempt: 2 });
  expect(await jobs.jobState('default', `${lost}_1_2`)).toBe('prioritized');
  expect((await taskRow(env.db.pool, waiting)).dispatch_attempt).toBe(1);
  expect((await taskRow(env.db.pool, recent)).dispatch_attempt).toBe(1);
});
