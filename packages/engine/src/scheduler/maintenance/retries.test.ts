import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { insertTask, taskRow, testResources } from '../__tests__/fixtures';
import { Dispatcher } from '../dispatcher';
import { Retries } from './retries';

let env: TestEnv;
let dispatcher: Dispatcher;
beforeAll(async () => {
  env = await createTestEnv('retries');
  dispatcher = new Dispatcher(testResources(env), { pollMs: 60_000, dispatchBatch: 100, dispatchAhead: 1000, workersAliveWithinMs: 30_000, actor: 'test' });
});
afterAll(async () => {
  await dispatcher.close();
  await env.cleanup();
});

test('a retry whose delay has passed is scheduled with the next try and dispatched; a later one waits', async () => {
  const due = await insertTask(env.db.pool, { state: 'up_for_retry', tryNumber: 1, maxTries: 3, runAfterAgoMs: 10 });
  const later = await insertTask(env.db.pool, { state: 'up_for_retry', tryNumber: 1, maxTries: 3, runAfterAgoMs: -60_000 });
  expect(await new Retries(testResources(env), { batch: 100, actor: 'test' }, dispatcher).run()).toBe(1);
  expect(await taskRow(env.db.pool, due)).toMatchObject({ state: 'queued', try_number: 2, dispatch_attempt: 1 });
  expect(await taskRow(env.db.pool, later)).toMatchObject({ state: 'up_for_retry', try_number: 1 });
});
