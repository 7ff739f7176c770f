import { resumeFromTriggers } from '@deferrable/db';
import { subscribeHints, triggerFiredChannel } from '@deferrable/queues';
import { waitFor } from '@deferrable/testkit';
import { createHarness, deferredTask, triggerRow, type Harness } from './__tests__/support';
import { OutcomeRecorder } from './outcome-recorder';

let h: Harness;
let recorder: OutcomeRecorder;

beforeAll(async () => {
  h = await createHarness('outcome-recorder');
  recorder = new OutcomeRecorder(h.res);
});

afterAll(async () => {
  await recorder?.close();
  await h?.cleanup();
});

describe('OutcomeRecorder', () => {
  test('records a batch of outcomes, the first outcome of a trigger winning, then publishes a fired hint and a trigger-event job for each', async () => {
    const hinted: string[] = [];
    let ready!: () => void;
    const subscribed = new Promise<void>((r) => (ready = r));
    const hints = subscribeHints(
      h.res.redisUrl,
      triggerFiredChannel(h.res.prefix),
      (m) => hinted.push(...m.split(',')),
      () => ready(),
    );
    try {
      await subscribed;
      const a = await deferredTask(h.res, { type: 'test.now', kwargs: {} });
      const b = await deferredTask(h.res, { type: 'test.now', kwargs: {} });
      // In one batch: a event and a failure, and a second outcome for `a` that must lose.
      await Promise.all([
        recorder.record(a.triggerId, { kind: 'event', payload: { n: 1 } }),
        recorder.record(b.triggerId, { kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'no' } }),
        recorder.record(a.triggerId, { kind: 'event', payload: { n: 2 } }),
      ]);
      expect((await triggerRow(h.res, a.triggerId)).event).toEqual({ kind: 'event', payload: { n: 1 } });
      expect((await triggerRow(h.res, b.triggerId)).event).toEqual({ kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'no' } });
      expect(recorder.pending).toBe(0);
      expect(recorder.isRecording(a.triggerId)).toBe(false);
      for (const t of [a, b]) expect(await h.env.redis.exists(`${h.res.prefix}:trigger-events:${t.triggerId}`)).toBe(1);
      await waitFor(() => hinted.includes(a.triggerId) && hinted.includes(b.triggerId), 5000, 'fired hints');
      // A later outcome for a fired trigger records nothing and publishes nothing.
      await h.env.redis.del(`${h.res.prefix}:trigger-events:${a.triggerId}`);
      await recorder.record(a.triggerId, { kind: 'event', payload: { n: 3 } });
      expect((await triggerRow(h.res, a.triggerId)).event).toEqual({ kind: 'event', payload: { n: 1 } });
      expect(await h.env.redis.exists(`${h.res.prefix}:trigger-events:${a.triggerId}`)).toBe(0);
    } finally {
      await hints.close();
    }
  });

  test('a count taken while not flushing sees an outcome either recorded or still pending, never in between', async () => {
    const t = await deferredTask(h.res, { type: 'test.now', kwargs: {} });
    const recording = recorder.record(t.triggerId, { kind: 'event', payload: null });
    expect(recorder.isRecording(t.triggerId)).toBe(true);
    const seen = await recorder.whileNotFlushing(async () => {
      const { rows } = await h.res.db.pool.query<{ fired: boolean }>('SELECT event IS NOT NULL AS fired FROM trigger WHERE id = $1', [t.triggerId]);
      return { fired: rows[0]!.fired, pending: recorder.pending };
    });
    expect(seen.fired ? seen.pending : 1).toBe(seen.fired ? 0 : 1);
    await recording;
    expect((await triggerRow(h.res, t.triggerId)).event).toEqual({ kind: 'event', payload: null });
  });
});

describe('OutcomeRecorder with an outcome PostgreSQL refuses', () => {
  test('records the good outcomes of the batch, records the refused one as a failure saying why, and retries nothing for ever', async () => {
    const good = [await deferredTask(h.res, { type: 'test.now', kwargs: {} }), await deferredTask(h.res, { type: 'test.now', kwargs: {} })];
    const bad = await deferredTask(h.res, { type: 'test.now', kwargs: {} });
    // A lone surrogate: JSON.stringify keeps it as the escape \ud800, which jsonb refuses.
    await Promise.all([
      recorder.record(good[0]!.triggerId, { kind: 'event', payload: { n: 0 } }),
      recorder.record(bad.triggerId, { kind: 'event', payload: { s: '\ud800' } }),
      recorder.record(good[1]!.triggerId, { kind: 'event', payload: { n: 1 } }),
    ]);
    expect((await triggerRow(h.res, good[0]!.triggerId)).event).toEqual({ kind: 'event', payload: { n: 0 } });
    expect((await triggerRow(h.res, good[1]!.triggerId)).event).toEqual({ kind: 'event', payload: { n: 1 } });
    const failure = (await triggerRow(h.res, bad.triggerId)).event as { kind: string; error: { code: string; message: string } };
    expect(failure.kind).toBe('failure');
    expect(failure.error.code).toBe('TRIGGER_FAILED');
    expect(failure.error.message).toMatch(
      /^the trigger's event could not be recorded: PostgreSQL refused it \(invalid input syntax for type json: Unicode .*surrogate/,
    );
    for (const t of [...good, bad]) expect(await h.env.redis.exists(`${h.res.prefix}:trigger-events:${t.triggerId}`)).toBe(1);
    expect(h.logs.filter((l) => l.msg === 'recording trigger outcomes failed; retrying')).toEqual([]);
    expect(h.logs.find((l) => l.msg.startsWith('trigger outcome refused'))).toMatchObject({ triggerId: bad.triggerId });
    // The task resumes into its failure path with that error.
    const [resumed] = await resumeFromTriggers(h.res.db.pool, [bad.triggerId], 'test');
    expect(resumed?.id).toBe(bad.taskInstanceId);
    const { rows } = await h.res.db.pool.query('SELECT next_method, next_kwargs FROM task_instance WHERE id = $1', [bad.taskInstanceId]);
    expect(rows[0]).toMatchObject({ next_method: '__fail__', next_kwargs: { error: failure.error, triggerId: bad.triggerId } });
  });
});
