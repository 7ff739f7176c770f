import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { insertDeferred, taskRow, testResources } from '../__tests__/fixtures';
import { Dispatcher } from '../dispatcher';
import { Timeouts } from './timeouts';

let env: TestEnv;
let dispatcher: Dispatcher;
beforeAll(async () => {
  env = await createTestEnv('timeouts');
  dispatcher = new Dispatcher(testResources(env), { pollMs: 60_000, dispatchBatch: 100, dispatchAhead: 1000, workersAliveWithinMs: 30_000, actor: 'test' });
});
afterAll(async () => {
  await dispatcher.close();
  await env.cleanup();
});

test('a deferral past its timeout resumes into __fail__ and is dispatched; one within it waits', async () => {
  const late = await insertDeferred(env.db.pool, { timeoutAgoMs: 1000 });
  const early = await insertDeferred(env.db.pool, { timeoutAgoMs: -60_000 });
  // Fired before its deadline: its event wins, even if not applied yet.
  const firedInTime = await insertDeferred(env.db.pool, { timeoutAgoMs: 1000, event: { kind: 'event', payload: null }, firedAgoMs: 2000 });
  expect(await new Timeouts(testResources(env), { batch: 100, actor: 'test' }, dispatcher).run()).toBe(1);
  const t = await taskRow(env.db.pool, late.id);
  expect(t).toMatchObject({ state: 'queued', next_method: '__fail__', trigger_id: null });
  expect(t.next_kwargs).toMatchObject({ error: { code: 'TRIGGER_TIMEOUT' }, triggerId: late.triggerId });
  expect((await taskRow(env.db.pool, early.id)).state).toBe('deferred');
  expect((await taskRow(env.db.pool, firedInTime.id)).state).toBe('deferred');
});
