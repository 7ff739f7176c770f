import { InvalidInputError, type EnqueueRequest } from '@deferrable/domain';
import { Producer, taskRequests } from '@deferrable/queues';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { count, testResources } from './__tests__/fixtures';
import { RequestIntake, type Enqueue } from './request-intake';

let env: TestEnv;
let requests: Producer<typeof taskRequests.schema, void>;
let intake: RequestIntake | null = null;

function start(enqueue: Enqueue): void {
  intake = new RequestIntake(testResources(env), { enqueue, concurrency: 4 });
  intake.start();
}

beforeAll(async () => {
  env = await createTestEnv('requestintake');
  requests = new Producer(taskRequests, env.redisUrl, env.prefix);
});
afterEach(async () => {
  await intake?.stop();
  intake = null;
});
afterAll(async () => {
  await requests.close();
  await env.cleanup();
});

test('a request is recorded through the enqueue it was given, keyed by its job when it has no key', async () => {
  const calls: { request: EnqueueRequest; actor: string }[] = [];
  start(async (request, { actor }) => {
    calls.push({ request, actor });
    return { id: '00000000-0000-4000-8000-000000000001', created: true };
  });
  const q = requests.queue(undefined);
  const job = await q.add('task-request', { task: 'test.task', args: { n: 1 } });
  await waitFor(async () => (await q.getJobState(job.id!)) === 'completed', 10_000, 'the request handled');
  expect(calls).toHaveLength(1);
  expect(calls[0]!.actor).toBe(`request:${job.id}`);
  expect(calls[0]!.request).toMatchObject({ task: 'test.task', args: { n: 1 }, idempotencyKey: `request:${job.id}:${job.timestamp}` });
});

test('a refused request is recorded as a rejection and its job fails without retry', async () => {
  let calls = 0;
  start(async () => {
    calls++;
    throw new InvalidInputError('task request', [{ path: 'task', message: 'no task type named test.nope' }]);
  });
  const q = requests.queue(undefined);
  const job = await q.add('task-request', { task: 'test.nope', args: {} }, { attempts: 5 });
  await waitFor(async () => (await q.getJobState(job.id!)) === 'failed', 10_000, 'the job failed');
  expect(calls).toBe(1);
  const { rows } = await env.db.pool.query("SELECT reason FROM rejection WHERE source = 'queue:task-requests' AND job_id = $1", [job.id]);
  expect(rows[0]?.reason).toMatch(/test\.nope/);
});

test('a malformed request is rejected before the enqueue is called', async () => {
  let called = false;
  start(async () => {
    called = true;
    return { id: 'x', created: true };
  });
  const q = requests.queue(undefined);
  const job = await q.add('task-request', { task: 'bad name with spaces' });
  await waitFor(async () => (await q.getJobState(job.id!)) === 'failed', 10_000, 'the job failed');
  expect(called).toBe(false);
  expect(await count(env.db.pool, 'rejection WHERE job_id = $1', [job.id])).toBe(1);
});

test('an unreachable database is waited out: the request is recorded once it comes back', async () => {
  let tries = 0;
  start(async () => {
    if (++tries < 3) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    return { id: '00000000-0000-4000-8000-000000000002', created: true };
  });
  const q = requests.queue(undefined);
  const job = await q.add('task-request', { task: 'test.task' });
  await waitFor(async () => (await q.getJobState(job.id!)) === 'completed', 10_000, 'the request handled');
  // One attempt of the job: the retries happened inside it.
  expect(tries).toBe(3);
  expect((await q.getJob(job.id!))?.attemptsMade).toBe(1);
});
