import { createTestEnv, type TestEnv } from '@deferrable/testkit';
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
