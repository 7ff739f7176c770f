import { recordTriggerOutcomes } from '@deferrable/db';
import { bullPrefix, triggerFiredChannel } from '@deferrable/queues';
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
        const { rows } = await sys.env.db.pool.query<{ trigger_id: string | null; state: string }>('SELECT trigger_id, state FROM task_instance WHERE id = $1', [id]);
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
  });

  test('a malformed hint is recorded as rejected and changes nothing; the scheduler keeps going', async () => {
    const d = await deferredTask();
    const channel = triggerFiredChannel(sys.env.prefix);
    await sys.env.redis.publish(channel, `not-a-trigger-id,${d.triggerId}`);
    const rejection = await waitFor(
      async () =>
        (await sys.env.db.pool.query<{ reason: string; excerpt: string }>("SELECT reason, excerpt FROM rejection WHERE source = 'hint:trigger-fired'")).rows[0],
      10_000,
      'the rejection to be recorded',
    );
    expect(rejection.reason).toMatch(/trigger-fired hint/);
    expect(rejection.excerpt).toContain('not-a-trigger-id');
    // Nothing else changed: the valid id in the same message was not applied (it has not fired).
    expect((await sys.env.db.pool.query('SELECT state FROM task_instance WHERE id = $1', [d.id])).rows[0]).toEqual({ state: 'deferred' });
    // Still running: a well-formed hint after it is applied.
    await recordTriggerOutcomes(sys.env.db.pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: 2 } }]);
    await sys.env.redis.publish(channel, d.triggerId);
    expect((await sys.client.waitFor(d.id, { timeoutMs: 15_000, pollMs: 50 })).state).toBe('success');
    expect(sys.app('scheduler').running).toBe(true);
  });
});
