import { randomUUID } from 'node:crypto';
import { insertTaskInstance, registerJob } from '@deferrable/db';
import { NEW_WORK_PRIORITY, Producer, taskDispatch } from '@deferrable/queues';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { count, insertTask, taskRow, testResources } from './__tests__/fixtures';
import { Dispatcher, type DispatcherOptions } from './dispatcher';

let env: TestEnv;
let jobs: Producer<typeof taskDispatch.schema, string>;
const started: Dispatcher[] = [];

function dispatcher(over: Partial<DispatcherOptions> = {}): Dispatcher {
  const d = new Dispatcher(testResources(env), {
    pollMs: 60_000,
    dispatchBatch: 100,
    dispatchAhead: 1000,
    workersAliveWithinMs: 30_000,
    actor: 'test',
    ...over,
  });
  started.push(d);
  return d;
}

beforeAll(async () => {
  env = await createTestEnv('dispatcher');
  jobs = new Producer(taskDispatch, env.redisUrl, env.prefix);
});
afterEach(async () => {
  for (const d of started.splice(0)) {
    await d.stop();
    await d.close();
  }
  await env.db.pool.query('TRUNCATE task_instance, trigger, task_type_registration, job, rejection CASCADE');
});
afterAll(async () => {
  await jobs.close();
  await env.cleanup();
});

const jobStateOf = async (id: string) => {
  const t = await taskRow(env.db.pool, id);
  return jobs.jobState('default', `${id}_${t.try_number}_${t.dispatch_attempt}`);
};

test("an enqueue's NOTIFY wakes the dispatcher: the task is queued and its job published", async () => {
  const d = dispatcher();
  d.start();
  // The LISTEN connection is up (its first wake-up has run): from now on only a NOTIFY wakes it
  // before the 60 s poll.
  await waitFor(
    async () =>
      (await count(env.db.pool, "pg_stat_activity WHERE datname = $1 AND application_name = 'deferrable-listen' AND query ILIKE 'LISTEN%'", [
        env.databaseName,
      ])) > 0,
    10_000,
    'the LISTEN connection',
  );
  const { id } = await insertTaskInstance(env.db.pool, {
    id: randomUUID(),
    taskName: 'test.task',
    args: {},
    queue: 'default',
    priority: 0,
    maxTries: 1,
    retryDelayMs: 0,
    retryBackoff: 1,
    retryMaxDelayMs: 0,
    executionTimeoutMs: null,
    runAfter: null,
    idempotencyKey: null,
    actor: 'test',
  });
  await waitFor(async () => (await taskRow(env.db.pool, id)).state === 'queued', 10_000, 'the task queued');
  await waitFor(async () => (await jobStateOf(id)) === 'prioritized', 5000, 'its job published');
});

test('dispatch stops at the backlog mark and says so while a served queue is full', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await insertTask(env.db.pool, { state: 'scheduled' }));
  // A live worker with one slot serves the queue: the mark is max(ahead 2, 2 slots).
  await registerJob(env.db.pool, { id: randomUUID(), jobType: 'worker', hostname: 'h', pid: 1, capacity: 1, queues: ['default'] });
  const d = dispatcher({ dispatchAhead: 2 });
  const again = await d.dispatchDue();
  expect(await count(env.db.pool, "task_instance WHERE state = 'queued'")).toBe(2);
  expect(await count(env.db.pool, "task_instance WHERE state = 'scheduled'")).toBe(3);
  expect(again?.againInMs).toBeGreaterThan(0);
});

test('a resumed task is published without a priority (it overtakes new work); new work with one', async () => {
  const resumed = await insertTask(env.db.pool, { state: 'scheduled', nextMethod: 'resume' });
  const fresh = await insertTask(env.db.pool, { state: 'scheduled' });
  await dispatcher().dispatchDue();
  expect(await jobStateOf(resumed)).toBe('waiting');
  expect(await jobStateOf(fresh)).toBe('prioritized');
  const job = await jobs.queue('default').getJob(`${fresh}_1_1`);
  expect(job?.opts.priority).toBe(NEW_WORK_PRIORITY);
});

test('dispatchNow queues the given tasks past the backlog mark, and only scheduled ones', async () => {
  const a = await insertTask(env.db.pool, { state: 'scheduled' });
  const b = await insertTask(env.db.pool, { state: 'deferred' });
  await insertTask(env.db.pool, { state: 'queued', queuedAgoMs: 0 });
  await dispatcher({ dispatchAhead: 1 }).dispatchNow([a, b]);
  expect((await taskRow(env.db.pool, a)).state).toBe('queued');
  expect((await taskRow(env.db.pool, b)).state).toBe('deferred');
  expect(await jobStateOf(a)).toBe('prioritized');
});
