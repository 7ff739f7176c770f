import { recordTriggerOutcomes } from '@deferrable/db';
import { bullPrefix, Producer, triggerEvents, triggerFiredChannel } from '@deferrable/queues';
import { waitFor } from '@deferrable/testkit';
import { startSystem, transitions, type E2E } from './helpers';

// The triggerer announces recorded outcomes on a Redis channel so the scheduler applies them
// before their trigger-event jobs come up. Here the test plays the triggerer: it records the
// outcome itself and sends only the hint, no job. With a 60 s poll the backstop scan cannot be
// what applies the event within the test's bounds.
describe('fired hints (scheduler and worker as processes, the test as triggerer)', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('hints', { DEFERRABLE_POLL_MS: '60000' }, ['scheduler', 'worker']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  async function deferredTask(): Promise<{ id: string; triggerId: string }> {
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 3_600_000, tag: 'hinted' } });
    return waitFor(
      async () => {
        const { rows } = await sys.env.db.pool.query<{ trigger_id: string | null; state: string }>(
          'SELECT trigger_id, state FROM task_instance WHERE id = $1',
          [id],
        );
        const row = rows[0];
        return row?.state === 'deferred' && row.trigger_id ? { id, triggerId: row.trigger_id } : undefined;
      },
      10_000,
      'the task to defer',
    );
  }

  test('a hint alone resumes the task (no trigger-event job), once', async () => {
    const d = await deferredTask();
    await recordTriggerOutcomes(sys.env.db.pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: { via: 'hint' } } }]);
    const channel = triggerFiredChannel(sys.env.prefix);
    expect(channel.startsWith(bullPrefix(sys.env.prefix))).toBe(true);
    // The same id twice in one hint and once more in a second one: applied once all the same.
    await sys.env.redis.publish(channel, `${d.triggerId},${d.triggerId}`);
    await sys.env.redis.publish(channel, d.triggerId);
    const view = await sys.client.waitFor(d.id, { timeoutMs: 15_000, pollMs: 50 });
    expect(view.state).toBe('success');
    expect(view.result).toEqual({ event: { via: 'hint' }, kwargs: { tag: 'hinted' }, tryNumber: 1 });
    const log = await transitions(sys.env, d.id);
    expect(log.filter((t) => t.from_state === 'deferred')).toEqual([{ try_number: 1, from_state: 'deferred', to_state: 'scheduled' }]);
    expect(log.filter((t) => t.to_state === 'running')).toHaveLength(2);

    // Its trigger-event job, arriving after the hint, is settled without a statement.
    const statusOf = async () => {
      const port = (await sys.app('scheduler').waitForLog((r) => typeof r.healthPort === 'number')).healthPort as number;
      return ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { triggerEvents: Record<string, number> }).triggerEvents;
    };
    const before = await statusOf();
    expect(before.appliedByHint).toBeGreaterThanOrEqual(1);
    const events = new Producer(triggerEvents, sys.env.redisUrl, sys.env.prefix);
    try {
      await events.addBulk(undefined, [{ triggerId: d.triggerId }]);
    } finally {
      await events.close();
    }
    const after = await waitFor(
      async () => {
        const s = await statusOf();
        return s.jobsSettledWithoutStatement! > before.jobsSettledWithoutStatement! ? s : undefined;
      },
      10_000,
      'the job to be settled',
    );
    expect(after.jobStatements).toBe(before.jobStatements);
    expect((await sys.client.get(d.id))?.state).toBe('success');
  });

  test('a malformed hint is recorded as rejected and changes nothing; the scheduler keeps going', async () => {
    const [held, next] = [await deferredTask(), await deferredTask()];
    // Both have fired: a lenient reading of the bad hint would apply `held`.
    await recordTriggerOutcomes(
      sys.env.db.pool,
      [held, next].map((d) => ({ triggerId: d.triggerId, outcome: { kind: 'event', payload: 2 } })),
    );
    const channel = triggerFiredChannel(sys.env.prefix);
    await sys.env.redis.publish(channel, `not-a-trigger-id,${held.triggerId}`);
    const rejection = await waitFor(
      async () =>
        (await sys.env.db.pool.query<{ reason: string; excerpt: string }>("SELECT reason, excerpt FROM rejection WHERE source = 'hint:trigger-fired'")).rows[0],
      10_000,
      'the rejection to be recorded',
    );
    expect(rejection.reason).toMatch(/trigger-fired hint/);
    // The excerpt says what came without repeating it (rejections are redacted).
    expect(rejection.excerpt).toMatch(/\[redacted string, \d+ chars\]/);
    // A good hint sent after it is applied (hints are handled in order, their events one batch
    // after another), and by then the bad one has changed nothing.
    await sys.env.redis.publish(channel, next.triggerId);
    expect((await sys.client.waitFor(next.id, { timeoutMs: 15_000, pollMs: 50 })).state).toBe('success');
    expect((await sys.env.db.pool.query('SELECT state FROM task_instance WHERE id = $1', [held.id])).rows[0]).toEqual({ state: 'deferred' });
    expect(sys.app('scheduler').running).toBe(true);
  });
});
