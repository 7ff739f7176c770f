import { Producer, taskDispatch, triggerEvents, triggerFiredChannel } from '@deferrable/queues';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { count, insertDeferred, taskRow, testResources } from './__tests__/fixtures';
import { Dispatcher } from './dispatcher';
import { EventApplier, type EventApplierOptions } from './event-applier';

let env: TestEnv;
let dispatcher: Dispatcher;
let events: Producer<typeof triggerEvents.schema, void>;
let dispatches: Producer<typeof taskDispatch.schema, string>;
let applier: EventApplier | null = null;

const fired = { kind: 'event', payload: { ok: true } };

function start(over: Partial<EventApplierOptions> = {}): EventApplier {
  applier = new EventApplier(testResources(env), { eventConcurrency: 8, pollMs: 60_000, batch: 100, actor: 'test', ...over }, dispatcher);
  applier.start();
  return applier;
}

beforeAll(async () => {
  env = await createTestEnv('eventapplier');
  dispatcher = new Dispatcher(testResources(env), { pollMs: 60_000, dispatchBatch: 100, dispatchAhead: 1000, workersAliveWithinMs: 30_000, actor: 'test' });
  events = new Producer(triggerEvents, env.redisUrl, env.prefix);
  dispatches = new Producer(taskDispatch, env.redisUrl, env.prefix);
});
afterEach(async () => {
  await applier?.stop();
  applier = null;
});
afterAll(async () => {
  await Promise.all([events.close(), dispatches.close(), dispatcher.close()]);
  await env.cleanup();
});

test('a trigger-event job resumes its task, dispatched in the same statement, and its job is published', async () => {
  const a = start();
  const { id, triggerId } = await insertDeferred(env.db.pool, { event: fired });
  await events.add(undefined, { triggerId });
  await waitFor(async () => (await taskRow(env.db.pool, id)).state === 'queued', 10_000, 'the task resumed');
  const t = await taskRow(env.db.pool, id);
  expect(t).toMatchObject({ next_method: 'resume', trigger_id: null, dispatch_attempt: 1 });
  expect(t.next_kwargs).toEqual({ event: { ok: true } });
  // A resumed task's job has no priority: it overtakes new work.
  await waitFor(async () => (await dispatches.jobState('default', `${id}_1_1`)) === 'waiting', 5000, 'its dispatch job');
  expect(a.counts.jobStatements).toBe(1);
});

test('a fired hint applies the event before its job arrives; the job then needs no statement', async () => {
  const a = start();
  const channel = triggerFiredChannel(env.prefix);
  await waitFor(async () => ((await env.redis.pubsub('NUMSUB', channel)) as [string, number])[1] > 0, 10_000, 'the hint subscription');
  const { id, triggerId } = await insertDeferred(env.db.pool, { event: fired });
  await env.redis.publish(channel, triggerId);
  await waitFor(async () => (await taskRow(env.db.pool, id)).state === 'queued', 10_000, 'the task resumed by its hint');
  expect(a.counts.appliedByHint).toBe(1);
  await events.add(undefined, { triggerId });
  await waitFor(() => a.counts.jobsSettledWithoutStatement === 1, 10_000, 'the job settled');
  expect(a.counts.jobStatements).toBe(0);
});

test('the backstop scan applies a fired trigger whose message was lost', async () => {
  const { id } = await insertDeferred(env.db.pool, { event: fired, firedAgoMs: 5000 });
  start({ pollMs: 50 });
  await waitFor(async () => (await taskRow(env.db.pool, id)).state === 'queued', 10_000, 'the task resumed by the backstop');
});

test('a malformed trigger-event job is recorded as a rejection and fails without retry', async () => {
  start();
  const q = events.queue(undefined);
  const job = await q.add('trigger-event', { triggerId: 'not-a-uuid' }, { attempts: 5 });
  await waitFor(async () => (await q.getJobState(job.id!)) === 'failed', 10_000, 'the job failed');
  expect((await q.getJob(job.id!))?.failedReason).toMatch(/invalid job on trigger-events/);
  expect(await count(env.db.pool, "rejection WHERE source = 'queue:trigger-events' AND job_id = $1", [job.id])).toBe(1);
});
