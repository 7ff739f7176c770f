import { randomUUID } from 'node:crypto';
import { InvalidInputError } from '@deferrable/domain';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import type { Queue } from 'bullmq';
import { Producer } from './producer';
import { taskDispatch, triggerEvents } from './catalog';
import { bullPrefix, keyPattern } from './redis';

describe('queue producer (real Redis)', () => {
  let env: TestEnv;
  let dispatches: Producer<typeof taskDispatch.schema, string>;
  beforeAll(async () => {
    env = await createTestEnv('queues');
    dispatches = new Producer(taskDispatch, env.redisUrl, env.prefix);
  });
  afterAll(async () => {
    await dispatches.close();
    await env.cleanup();
  });

  test('a payload is validated before it is added', async () => {
    await expect(dispatches.add('default', { taskInstanceId: 'nope', tryNumber: 0, dispatchAttempt: 1 })).rejects.toThrow(InvalidInputError);
    expect(await dispatches.queue('default').count()).toBe(0);
  });

  test('job ids are deterministic, so a repeated dispatch is a no-op', async () => {
    const msg = { taskInstanceId: randomUUID(), tryNumber: 2, dispatchAttempt: 3 };
    await dispatches.add('default', msg);
    await dispatches.add('default', msg);
    const q = dispatches.queue('default');
    expect(await q.getWaitingCount()).toBe(1);
    const jobId = `${msg.taskInstanceId}_2_3`;
    expect(await dispatches.jobState('default', jobId)).toBe('waiting');
    expect(await dispatches.jobState('default', 'missing')).toBe('unknown');
    expect((await q.getJob(jobId))!.data).toEqual(msg);
  });

  test('keys live under the prefix with a hash tag', async () => {
    expect(bullPrefix('plain')).toBe('{plain}');
    expect(bullPrefix('{tagged}')).toBe('{tagged}');
    const keys = await env.redis.keys('*' + env.prefix.slice(1, -1) + '*');
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.startsWith(`${env.prefix}:`)).toBe(true);
    expect(keyPattern(env.prefix)).toBe(`${env.prefix}:*`);
  });

  test('trigger events are keyed by trigger id', async () => {
    const events = new Producer(triggerEvents, env.redisUrl, env.prefix);
    try {
      const triggerId = randomUUID();
      await events.addBulk(undefined, [{ triggerId }, { triggerId }]);
      expect(await events.queue(undefined).getWaitingCount()).toBe(1);
      expect(await events.jobState(undefined, triggerId)).toBe('waiting');
    } finally {
      await events.close();
    }
  });
});

describe('hints over Redis pub/sub', () => {
  test('a published hint reaches a subscriber, coalesced within one turn', async () => {
    const { HintPublisher, subscribeHints, triggerCreatedChannel } = await import('./hints');
    const channel = triggerCreatedChannel(`{hint-test-${randomUUID()}}`);
    const received: string[] = [];
    let ready!: () => void;
    const subscribed = new Promise<void>((r) => (ready = r));
    const sub = subscribeHints(
      'redis://127.0.0.1:6379',
      channel,
      (m) => received.push(m),
      () => ready(),
    );
    const pub = new HintPublisher('redis://127.0.0.1:6379', channel);
    try {
      await subscribed;
      pub.publish('default');
      pub.publish('default');
      pub.publish('heavy');
      // A marker published in a later turn: one connection's messages arrive in order, so once it
      // is here, every message of the first turn is too (no sleep to wait for a duplicate).
      await new Promise((r) => setImmediate(r));
      pub.publish('marker');
      await waitFor(() => received.includes('marker'), 10_000, 'the marker hint');
      expect(received.slice(0, -1).sort()).toEqual(['default', 'heavy']);
      expect(received.at(-1)).toBe('marker');
    } finally {
      await pub.close();
      await sub.close();
    }
  });
});

describe('open queues are bounded', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv('producerlru');
  });
  afterAll(() => env.cleanup());

  test('past maxOpen queue names, the least recently used queue is closed (its connection ended), and reopened when used again', async () => {
    const dispatches = new Producer(taskDispatch, env.redisUrl, env.prefix, 4);
    try {
      const msg = (n: number) => ({ taskInstanceId: randomUUID(), tryNumber: 1, dispatchAttempt: n });
      const opened: Queue[] = [];
      for (let i = 0; i < 10; i++) {
        await dispatches.add(`q${i}`, msg(1));
        opened.push(dispatches.queue(`q${i}`));
      }
      // The evicted queues' Redis connections are closed, not left open; the 4 most recent stay.
      const closed = () => opened.map((q) => q.getBackend().connection.status === 'closed');
      await waitFor(() => closed().filter(Boolean).length === 6, 5000, 'the evicted connections closed');
      expect(closed()).toEqual([...Array(6).fill(true), ...Array(4).fill(false)]);
      expect(dispatches.openQueues).toBe(4);
      // Every add reached Redis, and an evicted name works again.
      await dispatches.add('q0', msg(2));
      for (let i = 0; i < 10; i++) expect(await env.redis.exists(`${env.prefix}:tasks.q${i}:meta`)).toBe(1);
      expect(await dispatches.queue('q0').getJobCounts('waiting', 'prioritized')).toEqual({ waiting: 2, prioritized: 0 });
      expect(dispatches.openQueues).toBe(4);
    } finally {
      await dispatches.close();
    }
  });

  test('a queue evicted while an add is in flight closes after the add', async () => {
    const dispatches = new Producer(taskDispatch, env.redisUrl, env.prefix, 1);
    try {
      const adds = [];
      for (let i = 0; i < 20; i++) adds.push(dispatches.add(`burst${i % 5}`, { taskInstanceId: randomUUID(), tryNumber: 1, dispatchAttempt: 1 }));
      await Promise.all(adds);
      expect(dispatches.openQueues).toBe(1);
      let total = 0;
      for (let i = 0; i < 5; i++) total += await dispatches.queue(`burst${i}`).getWaitingCount();
      expect(total).toBe(20);
    } finally {
      await dispatches.close();
    }
  });
});
