import { DeferrableClient } from '@deferrable/sdk';
import { bullPrefix, taskDispatch } from '@deferrable/queues';
import { Queue } from 'bullmq';
import { AppProcess } from '@deferrable/testkit';
import { count, START_TIMEOUT_MS, startSystem, transitions, waitFor, type E2E } from './helpers';

describe('failures are recorded where a person sees them, and the processes keep running', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('failures');
  });
  afterAll(async () => {
    await sys?.close();
  });

  /** Stops the triggerer (it releases its triggers), edits the state of record, starts a new one. */
  async function restartTriggererAfter(edit: () => Promise<unknown>): Promise<void> {
    const old = sys.app('triggerer');
    await old.stop();
    await edit();
    const fresh = new AppProcess('triggerer', sys.env.appEnv());
    sys.apps.push(fresh);
    await fresh.started(START_TIMEOUT_MS);
  }

  test('a deferral that times out fails the task with the timeout error', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.defer-times-out', args: { timeoutMs: 500 } });
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'TRIGGER_TIMEOUT', type: 'TriggerTimeoutError' });
    expect(done.tryNumber).toBe(1);
  });

  test('a timed-out deferral is retried when tries remain', async () => {
    const { id } = await sys.client.enqueue({
      task: 'test.defer-times-out',
      args: { timeoutMs: 300 },
      maxTries: 2,
      retry: { delayMs: 100, backoff: 1 },
    });
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.tryNumber).toBe(2);
    expect(done.error).toMatchObject({ code: 'TRIGGER_TIMEOUT' });
    const log = await transitions(sys.env, id);
    expect(count(log, 'running', 'up_for_retry')).toBe(1);
    expect(count(log, 'up_for_retry', 'scheduled')).toBe(1);
    expect(count(log, 'running', 'deferred')).toBe(2);
  });

  test('a callback that throws is retried and then succeeds', async () => {
    const { id } = await sys.client.enqueue({
      task: 'test.flaky-callback',
      args: { delayMs: 100 },
      maxTries: 3,
      retry: { delayMs: 100, backoff: 1 },
    });
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('success');
    expect(done.result).toEqual({ tryNumber: 2 });
    const log = await transitions(sys.env, id);
    expect(count(log, 'running', 'up_for_retry')).toBe(1);
    expect(count(log, 'running', 'success')).toBe(1);
  });

  test('a malformed job on the task queue is rejected with a recorded reason', async () => {
    const snapshot = async () =>
      (
        await sys.env.db.pool.query<{ s: string }>(
          "SELECT coalesce(string_agg(id || ':' || state || ':' || updated_at, ',' ORDER BY id), '') AS s FROM task_instance",
        )
      ).rows[0]!.s;
    const before = await snapshot();
    const queue = new Queue(taskDispatch.queueName('default'), {
      connection: { host: '127.0.0.1', port: 6379 },
      prefix: bullPrefix(sys.env.prefix),
    });
    try {
      await queue.add('dispatch', { taskInstanceId: 'not-a-uuid', tryNumber: 'one' }, { jobId: 'malformed-1' });
      const rejection = await waitFor(async () => {
        const r = await sys.env.db.pool.query<{ source: string; reason: string; job_id: string }>(
          "SELECT source, reason, job_id FROM rejection WHERE job_id = 'malformed-1'",
        );
        return r.rows[0];
      });
      expect(rejection.source).toBe('queue:tasks.default');
      expect(rejection.reason).toMatch(/taskInstanceId/);
      expect(rejection.reason).toMatch(/tryNumber/);
      // Shown as failed in the queue (and in Bull Board), never retried.
      const job = await waitFor(async () => {
        const j = await queue.getJob('malformed-1');
        return j && (await j.getState()) === 'failed' ? j : undefined;
      });
      expect(job.attemptsMade).toBe(1);
    } finally {
      await queue.close();
    }
    // Nothing else changed: no task instance was created or touched.
    expect(await snapshot()).toBe(before);
  });

  test('an unknown task name is refused at enqueue; one written anyway fails with the reason, and the worker keeps working', async () => {
    await expect(sys.client.enqueue({ task: 'no.such-task' })).rejects.toMatchObject({ code: 'UNKNOWN_TASK_TYPE' });
    // A deployment that allows unregistered task types (or a worker without the code, in a skew).
    const unchecked = new DeferrableClient({ databaseUrl: sys.env.databaseUrl, allowUnregisteredTasks: true });
    let id: string;
    try {
      ({ id } = await unchecked.enqueue({ task: 'no.such-task' }));
    } finally {
      await unchecked.close();
    }
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'UNKNOWN_TASK_TYPE' });
    expect(done.error!.message).toContain('no.such-task');
    const ok = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 50 } });
    expect((await sys.client.waitFor(ok.id, { timeoutMs: 15_000 })).state).toBe('success');
  });

  test('an unknown trigger name fails the deferring task with the reason', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.unknown-trigger', maxTries: 3 });
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'UNKNOWN_TRIGGER_TYPE' });
    expect(done.error!.message).toContain('no-such-trigger');
    // Bad input is not retried, and no trigger row was written.
    expect(done.tryNumber).toBe(1);
    const { rows } = await sys.env.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM trigger WHERE classpath = 'no-such-trigger'");
    expect(rows[0]!.n).toBe(0);
  });

  test('a trigger type unknown to the triggerer resumes the task into a TriggerFailedError', async () => {
    // A row written by a worker that knows a type the triggerer does not (a version skew).
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 60_000 } });
    const triggerId = await waitFor(async () => (await sys.client.get(id))?.triggerId ?? undefined);
    await restartTriggererAfter(() => sys.env.db.pool.query("UPDATE trigger SET classpath = 'retired-type' WHERE id = $1", [triggerId]));
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'TRIGGER_FAILED' });
    expect(done.error!.message).toContain('retired-type');
  });

  test('a trigger that throws resumes the task into a TriggerFailedError', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 60_000 } });
    const triggerId = await waitFor(async () => (await sys.client.get(id))?.triggerId ?? undefined);
    const { DEV_KWARGS_KEY } = await import('@deferrable/config');
    const { createKwargsCipher } = await import('@deferrable/db');
    const token = createKwargsCipher([DEV_KWARGS_KEY]).encrypt({ afterMs: 50 });
    await restartTriggererAfter(() => sys.env.db.pool.query("UPDATE trigger SET classpath = 'test.exploding', kwargs = $2 WHERE id = $1", [triggerId, token]));
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'TRIGGER_FAILED' });
    expect(done.error!.message).toContain('the trigger exploded');
  });

  test('a run longer than its execution timeout fails with the timeout error and frees its slot', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.blocking-wait', args: { ms: 20_000 }, executionTimeoutMs: 300 });
    const done = await sys.client.waitFor(id, { timeoutMs: 10_000 });
    expect(done.state).toBe('failed');
    expect(done.error).toMatchObject({ code: 'EXECUTION_TIMEOUT', type: 'ExecutionTimeoutError' });
  });

  test('cancelling a deferred task stops its trigger and deletes it', async () => {
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 60_000 } });
    const triggerId = await waitFor(async () => (await sys.client.get(id))?.triggerId ?? undefined);
    const triggerer = sys.app('triggerer');
    await waitFor(async () => {
      const r = await sys.env.db.pool.query('SELECT 1 FROM trigger WHERE id = $1 AND triggerer_id IS NOT NULL', [triggerId]);
      return r.rowCount === 1;
    });
    expect((await sys.client.cancel(id)).state).toBe('cancelled');
    // A second cancel is refused with a typed error that says why.
    await expect(sys.client.cancel(id)).rejects.toMatchObject({ code: 'INVALID_TRANSITION', from: 'cancelled' });
    expect((await sys.client.get(id))!.state).toBe('cancelled');
    await triggerer.waitForLog((r) => r.triggerId === triggerId && r.msg.includes('cancelling'), 10_000);
    await waitFor(async () => {
      const r = await sys.env.db.pool.query('SELECT 1 FROM trigger WHERE id = $1', [triggerId]);
      return r.rowCount === 0;
    });
  });

  test('a task request handled twice records one task', async () => {
    const queue = new Queue('task-requests', { connection: { host: '127.0.0.1', port: 6379 }, prefix: bullPrefix(sys.env.prefix) });
    try {
      // No idempotency key: the request is keyed by its job.
      const job = await queue.add('task-request', { task: 'test.blocking-wait', args: { ms: 1, tag: 'twice' } });
      const recorded = async () =>
        (await sys.env.db.pool.query<{ id: string }>("SELECT id FROM task_instance WHERE task_name = 'test.blocking-wait' AND args->>'tag' = 'twice'")).rows;
      await waitFor(async () => (await recorded()).length === 1 && (await job.getState()) === 'completed', 15_000, 'recorded once');
      const first = await sys.app('scheduler').waitForLog((r) => r.msg === 'task request recorded' && r.jobId === job.id);
      expect(first.created).toBe(true);
      // The same job again, as when its consumer died after the insert committed.
      await job.retry('completed');
      const again = await sys.app('scheduler').waitForLog((r) => r.msg === 'task request recorded' && r.jobId === job.id && r !== first, 15_000);
      expect(again.created).toBe(false);
      expect(again.taskInstanceId).toBe(first.taskInstanceId);
      expect(await recorded()).toHaveLength(1);
    } finally {
      await queue.close();
    }
  });

  test('an invalid task request is rejected with a recorded reason and creates nothing', async () => {
    const before = await sys.env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM task_instance');
    const queue = new Queue('task-requests', { connection: { host: '127.0.0.1', port: 6379 }, prefix: bullPrefix(sys.env.prefix) });
    try {
      await queue.add('task-request', { task: 'bad name with spaces', args: {}, surprise: true }, { jobId: 'bad-request-1' });
    } finally {
      await queue.close();
    }
    const rejection = await waitFor(async () => {
      const r = await sys.env.db.pool.query<{ source: string; reason: string }>("SELECT source, reason FROM rejection WHERE job_id = 'bad-request-1'");
      return r.rows[0];
    });
    expect(rejection.source).toBe('queue:task-requests');
    expect(rejection.reason).toMatch(/task/);
    expect(rejection.reason).toMatch(/surprise|unrecognized/i);
    const after = await sys.env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM task_instance');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    for (const name of ['scheduler', 'triggerer', 'worker'] as const) expect(sys.app(name).running).toBe(true);
  });
});
