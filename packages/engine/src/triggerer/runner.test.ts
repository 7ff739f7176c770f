import { randomUUID } from 'node:crypto';
import { claimTriggers, resumeFromTriggers, type TaskInstanceRow } from '@deferrable/db';
import { defineTask, recordError } from '@deferrable/domain';
import { waitFor } from '@deferrable/testkit';
import { createHarness, deferredTask, FakeClock, peerTriggerer, testTriggers, triggerRow, type Harness } from './__tests__/support';
import { runTaskCode } from '../worker/execute';
import { OutcomeRecorder } from './outcome-recorder';
import { TriggerRunner } from './runner';

let h: Harness;
let recorder: OutcomeRecorder;
let runner: TriggerRunner;
const cleanups = new Map<string, number>();
const triggererId = randomUUID();
const MAX_PAYLOAD = 1024;

beforeAll(async () => {
  h = await createHarness('trigger-runner');
  recorder = new OutcomeRecorder(h.res);
  runner = new TriggerRunner(h.res, { triggers: testTriggers(cleanups), blockWarnMs: 0, maxPayloadBytes: MAX_PAYLOAD }, recorder);
  runner.start();
  await peerTriggerer(h.res, { id: triggererId });
});

afterAll(async () => {
  await runner?.stop(1000);
  await recorder?.drain();
  await recorder?.close();
  runner?.close();
  await h?.cleanup();
});

/** Defers tasks on these triggers, claims them and starts them in the runner. */
async function run(...triggers: { type: string; kwargs: Record<string, unknown> }[]): Promise<{ taskInstanceId: string; triggerId: string }[]> {
  return runIn(runner, ...triggers);
}

async function runIn(
  runner: TriggerRunner,
  ...triggers: { type: string; kwargs: Record<string, unknown> }[]
): Promise<{ taskInstanceId: string; triggerId: string }[]> {
  const deferred = [];
  for (const t of triggers) deferred.push(await deferredTask(h.res, t as { type: string; kwargs: Record<string, never> }));
  const rows = await claimTriggers(h.res.db.pool, { triggererId, limit: 100, healthThresholdMs: 30_000, queues: ['default'] });
  runner.startClaimed(rows);
  return deferred;
}

async function outcome(triggerId: string): Promise<Record<string, unknown>> {
  return waitFor(async () => (await triggerRow(h.res, triggerId)).event, 10_000, `outcome of ${triggerId}`);
}

describe('TriggerRunner', () => {
  test('records the first event of a trigger, and a failure for one that throws, ends without an event, or cannot start', async () => {
    const [fires, throws, silent, unknown] = await run(
      { type: 'test.now', kwargs: { payload: { ok: true }, endTask: 'success' } },
      { type: 'test.throws', kwargs: {} },
      { type: 'test.silent', kwargs: {} },
      { type: 'no-such-trigger', kwargs: {} },
    );
    expect(await outcome(fires!.triggerId)).toEqual({ kind: 'event', payload: { ok: true }, endTask: 'success' });
    expect(await outcome(throws!.triggerId)).toMatchObject({ kind: 'failure', error: { code: 'TASK_FAILED', message: 'Error: the trigger exploded' } });
    expect(await outcome(silent!.triggerId)).toEqual({ kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'the trigger ended without an event' } });
    expect(await outcome(unknown!.triggerId)).toMatchObject({ kind: 'failure', error: { code: 'UNKNOWN_TRIGGER_TYPE' } });
    for (const t of [fires!, throws!, silent!]) expect(cleanups.get(t.triggerId)).toBe(1);
    await waitFor(() => runner.size === 0, 5000, 'no trigger left running');
  });

  test("a trigger that throws is logged with its message, stack and task instance id, and the task's error shows where it threw", async () => {
    const [t] = await run({ type: 'test.throws', kwargs: {} });
    const failure = (await outcome(t!.triggerId)) as { kind: string; error: { code: string; message: string; stack?: string } };
    expect(failure.error.stack).toMatch(/the trigger exploded\n\s+at .*support\.ts/);
    const line = await waitFor(() => h.logs.find((l) => l.msg === 'trigger failed' && l.triggerId === t!.triggerId), 5000, 'the log line');
    expect(line).toMatchObject({ taskInstanceId: t!.taskInstanceId, triggerType: 'test.throws', code: 'TASK_FAILED', reason: 'Error: the trigger exploded' });
    expect(line.stack).toContain('support.ts');
    // The task resumes into its failure path; the error it fails with carries the trigger's frames.
    await resumeFromTriggers(h.res.db.pool, [t!.triggerId], 'test');
    const { rows } = await h.res.db.pool.query<TaskInstanceRow>('SELECT * FROM task_instance WHERE id = $1', [t!.taskInstanceId]);
    expect(rows[0]!.next_kwargs).toMatchObject({ error: { code: 'TASK_FAILED', stack: failure.error.stack } });
    const controller = new AbortController();
    const ran = await runTaskCode({
      row: rows[0]!,
      type: defineTask({ name: 'test.task', execute: () => null }),
      clock: h.res.clock,
      signal: controller.signal,
      abort: (r) => controller.abort(r),
    });
    expect(ran.kind).toBe('error');
    const stored = recordError((ran as { error: unknown }).error);
    expect(stored).toMatchObject({ code: 'TRIGGER_FAILED' });
    expect(stored.message).toMatch(/the trigger exploded\n\s+at .*support\.ts/);
  });

  test('a trigger that ends without an event is logged with its ids; one that fires is logged at info with its task instance id', async () => {
    const [silent, fires] = await run({ type: 'test.silent', kwargs: {} }, { type: 'test.now', kwargs: { payload: 1 } });
    await outcome(fires!.triggerId);
    expect(
      await waitFor(() => h.logs.find((l) => l.msg === 'trigger ended without an event' && l.triggerId === silent!.triggerId), 5000, 'warn'),
    ).toMatchObject({
      level: 40,
      taskInstanceId: silent!.taskInstanceId,
      triggerType: 'test.silent',
    });
    expect(await waitFor(() => h.logs.find((l) => l.msg === 'trigger fired' && l.triggerId === fires!.triggerId), 5000, 'info')).toMatchObject({
      level: 30,
      taskInstanceId: fires!.taskInstanceId,
      triggerType: 'test.now',
    });
  });

  test("an event with endTask 'failed' ends the task failed with a recorded error", async () => {
    const [t] = await run({ type: 'test.now', kwargs: { payload: { why: 'no' }, endTask: 'failed' } });
    await outcome(t!.triggerId);
    await resumeFromTriggers(h.res.db.pool, [t!.triggerId], 'test');
    const { rows } = await h.res.db.pool.query('SELECT state, error, result FROM task_instance WHERE id = $1', [t!.taskInstanceId]);
    expect(rows[0]).toEqual({
      state: 'failed',
      error: { code: 'TRIGGER_FAILED', type: 'TriggerFailedError', message: 'the trigger ended the task as failed' },
      result: { why: 'no' },
    });
  });

  test('an event PostgreSQL could not store (a lone UTF-16 surrogate) is refused at the boundary: the trigger fails with INVALID_INPUT', async () => {
    const [t] = await run({ type: 'test.surrogate', kwargs: {} });
    const failure = (await outcome(t!.triggerId)) as { kind: string; error: { code: string; message: string } };
    expect(failure).toMatchObject({ kind: 'failure', error: { code: 'INVALID_INPUT' } });
    expect(failure.error.message).toContain('lone UTF-16 surrogate');
  });

  test('an event payload over maxPayloadBytes fails the trigger with PAYLOAD_TOO_LARGE, and its task resumes into its failure path with it', async () => {
    const [big, small] = await run({ type: 'test.big', kwargs: { bytes: MAX_PAYLOAD } }, { type: 'test.big', kwargs: { bytes: MAX_PAYLOAD - 2 } });
    const failure = (await outcome(big!.triggerId)) as { kind: string; error: { code: string; message: string } };
    expect(failure).toMatchObject({ kind: 'failure', error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(failure.error.message).toContain(`is ${MAX_PAYLOAD + 2} bytes, over the limit of ${MAX_PAYLOAD}`);
    expect(await outcome(small!.triggerId)).toEqual({ kind: 'event', payload: 'x'.repeat(MAX_PAYLOAD - 2) });
    await resumeFromTriggers(h.res.db.pool, [big!.triggerId], 'test');
    const { rows } = await h.res.db.pool.query('SELECT next_method, next_kwargs FROM task_instance WHERE id = $1', [big!.taskInstanceId]);
    expect(rows[0]).toMatchObject({ next_method: '__fail__', next_kwargs: { error: { code: 'PAYLOAD_TOO_LARGE' } } });
  });

  test('a cancelled trigger records nothing and cleans up', async () => {
    const [t] = await run({ type: 'test.forever', kwargs: {} });
    expect(runner.has(t!.triggerId)).toBe(true);
    const entry = [...runner.entries()].find(([id]) => id === t!.triggerId)![1];
    runner.cancel(entry, new Error('trigger cancelled'));
    await entry.done;
    expect(runner.has(t!.triggerId)).toBe(false);
    expect(cleanups.get(t!.triggerId)).toBe(1);
    expect((await triggerRow(h.res, t!.triggerId)).event).toBeNull();
  });

  test('a timer trigger waits in the shared timer queue and fires at its moment', async () => {
    const [t] = await run({ type: 'datetime', kwargs: { moment: new Date(Date.now() + 300).toISOString() } });
    expect(runner.has(t!.triggerId)).toBe(true);
    expect(runner.timerCount).toBe(1);
    expect(await outcome(t!.triggerId)).toMatchObject({ kind: 'event' });
    expect(runner.timerCount).toBe(0);
  });
});

describe('TriggerRunner with a fake clock', () => {
  test('timer triggers wait in the shared timer queue on one clock timer, and fire only when the clock passes their moment', async () => {
    const clock = new FakeClock();
    const fake = new TriggerRunner({ ...h.res, clock }, { triggers: testTriggers(), blockWarnMs: 0, maxPayloadBytes: MAX_PAYLOAD }, recorder);
    try {
      const t0 = clock.now();
      const [soon, later] = await runIn(
        fake,
        { type: 'datetime', kwargs: { moment: new Date(t0 + 60_000).toISOString() } },
        { type: 'datetime', kwargs: { moment: new Date(t0 + 120_000).toISOString() } },
      );
      expect(fake.timerCount).toBe(2);
      expect(clock.pending).toBe(1);
      clock.advance(59_999);
      // Timers run inside advance(): had the moment been reached, the trigger would have left.
      expect(fake.has(soon!.triggerId)).toBe(true);
      expect(recorder.pending).toBe(0);
      clock.advance(1);
      expect(fake.has(soon!.triggerId)).toBe(false);
      expect(fake.timerCount).toBe(1);
      expect(await outcome(soon!.triggerId)).toMatchObject({ kind: 'event', payload: { firedAt: new Date(t0 + 60_000).toISOString() } });
      expect(fake.has(later!.triggerId)).toBe(true);
      clock.advance(60_000);
      expect(await outcome(later!.triggerId)).toMatchObject({ kind: 'event', payload: { firedAt: new Date(t0 + 120_000).toISOString() } });
      expect(fake.timerCount).toBe(0);
    } finally {
      await fake.stop(1000);
    }
  });

  test("a trigger's sleep waits on the clock's timer, and its cancellation cancels that timer", async () => {
    const clock = new FakeClock();
    const fake = new TriggerRunner({ ...h.res, clock }, { triggers: testTriggers(), blockWarnMs: 0, maxPayloadBytes: MAX_PAYLOAD }, recorder);
    const [t] = await runIn(fake, { type: 'test.forever', kwargs: {} });
    await waitFor(() => clock.pending === 1, 5000, 'the sleep on the fake clock');
    await fake.stop(1000);
    expect(clock.pending).toBe(0);
    expect(fake.has(t!.triggerId)).toBe(false);
  });
});
