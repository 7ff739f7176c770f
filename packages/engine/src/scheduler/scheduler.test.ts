import { randomUUID } from 'node:crypto';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { count, insertTask, testResources } from './__tests__/fixtures';
import { Dispatcher } from './dispatcher';
import { Scheduler, type SchedulerOptions } from './index';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('scheduler');
});
afterAll(() => env.cleanup());

const options: SchedulerOptions = {
  pollMs: 30,
  dispatchBatch: 5,
  dispatchAhead: 1000,
  reapAfterMs: 30_000,
  redispatchAfterMs: 10_000,
  cleanupIntervalMs: 60_000,
  retentionMs: 0,
  jobRetentionMs: 0,
  rejectionRetentionMs: 0,
  retentionIntervalMs: 60_000,
  eventConcurrency: 4,
  heartbeatMs: 1000,
  enqueue: async () => ({ id: randomUUID(), created: true }),
};

test('dispatch steps never overlap in one process (only the dispatcher loop dispatches; maintenance wakes it)', async () => {
  let running = 0;
  let maxRunning = 0;
  let steps = 0;
  // oxlint-disable-next-line typescript/unbound-method -- called below with the instance as `this`
  const dispatchDue = Dispatcher.prototype.dispatchDue;
  // Each step is held a little longer than its statement takes, so that an overlap, if the code
  // allows one, is all but certain over many steps.
  const spy = jest.spyOn(Dispatcher.prototype, 'dispatchDue').mockImplementation(async function (this: Dispatcher) {
    running++;
    steps++;
    maxRunning = Math.max(maxRunning, running);
    try {
      await new Promise((r) => setTimeout(r, 20));
      return await dispatchDue.call(this);
    } finally {
      running--;
    }
  });
  const scheduler = new Scheduler(testResources(env), options);
  try {
    await scheduler.start();
    for (let i = 0; i < 40; i++) await insertTask(env.db.pool, { state: 'scheduled' });
    await waitFor(() => steps >= 40, 20_000, '40 dispatch steps');
    await waitFor(async () => (await count(env.db.pool, "task_instance WHERE state = 'queued'")) === 40, 10_000, 'every task dispatched');
  } finally {
    await scheduler.stop();
    spy.mockRestore();
  }
  expect(steps).toBeGreaterThanOrEqual(40);
  expect(maxRunning).toBe(1);
});
