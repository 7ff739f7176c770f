import { Producer, taskDispatch } from '@deferrable/queues';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { count, insertTask, taskRow, testResources } from '../__tests__/fixtures';
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
  const redispatch = new Redispatch(testResources(env), { redispatchAfterMs: 10_000, checksPerRun: 100, actor: 'test' }, dispatcher);
  expect(await redispatch.run()).toBe(1);
  expect(await taskRow(env.db.pool, lost)).toMatchObject({ state: 'queued', dispatch_attempt: 2 });
  expect(await jobs.jobState('default', `${lost}_1_2`)).toBe('prioritized');
  expect((await taskRow(env.db.pool, waiting)).dispatch_attempt).toBe(1);
  expect((await taskRow(env.db.pool, recent)).dispatch_attempt).toBe(1);
});

test('a lost job among the newest long-queued rows is found within a few runs, each checking a bounded number of rows', async () => {
  await env.db.pool.query('TRUNCATE task_instance CASCADE');
  const older: string[] = [];
  for (let i = 0; i < 30; i++) older.push(await insertTask(env.db.pool, { state: 'queued', dispatchAttempt: 1, queuedAgoMs: 120_000 - i * 100 }));
  await jobs.addBulk(
    'default',
    older.map((id) => ({ taskInstanceId: id, tryNumber: 1, dispatchAttempt: 1 })),
  );
  const lost = await insertTask(env.db.pool, { state: 'queued', dispatchAttempt: 1, queuedAgoMs: 30_000 });
  // Job states looked up in Redis, per run.
  const looked: number[] = [];
  const counting: Pick<Dispatcher, 'publish' | 'jobState'> = {
    publish: (rows) => dispatcher.publish(rows),
    jobState: (row) => {
      looked[looked.length - 1]! += 1;
      return dispatcher.jobState(row);
    },
  };
  const redispatch = new Redispatch(testResources(env), { redispatchAfterMs: 10_000, checksPerRun: 10, actor: 'test' }, counting);
  let runs = 0;
  while ((await taskRow(env.db.pool, lost)).dispatch_attempt === 1 && runs < 5) {
    looked.push(0);
    await redispatch.run();
    runs++;
  }
  expect((await taskRow(env.db.pool, lost)).dispatch_attempt).toBe(2);
  expect(runs).toBeLessThanOrEqual(4);
  expect(Math.max(...looked)).toBeLessThanOrEqual(10);
  expect(await count(env.db.pool, 'task_instance WHERE id = ANY($1::uuid[]) AND dispatch_attempt = 1', [older])).toBe(30);
});
