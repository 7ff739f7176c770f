import { AppProcess, deleteKeys } from '@deferrable/testkit';
import { count, START_TIMEOUT_MS, stateCounts, startSystem, transitions, waitAll, waitFor, type E2E } from './helpers';

/** Every task of `ids` succeeded, and each ran its callback to success exactly once. */
async function expectEachCompletedOnce(sys: E2E, ids: readonly string[]): Promise<void> {
  const views = await waitAll(sys.client, ids, 45_000);
  expect(views.filter((v) => v.state !== 'success')).toEqual([]);
  for (const id of ids) {
    const log = await transitions(sys.env, id);
    expect(count(log, 'running', 'success')).toBe(1);
    expect(count(log, 'deferred', 'scheduled')).toBeGreaterThanOrEqual(1);
  }
}

/** How many of `ids` have deferred at least once (a task that already resumed counts too). */
async function tasksThatDeferred(sys: E2E, ids: readonly string[]): Promise<number> {
  const { rows } = await sys.env.db.pool.query<{ n: number }>(
    "SELECT count(DISTINCT task_instance_id)::int AS n FROM task_transition WHERE task_instance_id = ANY($1::uuid[]) AND to_state = 'deferred'",
    [ids],
  );
  return rows[0]!.n;
}

/** Triggers of `ids` that no triggerer holds and that have not fired. */
async function unclaimed(sys: E2E, ids: readonly string[]): Promise<number> {
  const { rows } = await sys.env.db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id
     WHERE ti.id = ANY($1::uuid[]) AND t.triggerer_id IS NULL AND t.event IS NULL`,
    [ids],
  );
  return rows[0]!.n;
}

/** Triggers of `ids` held by a triggerer and not fired yet. */
async function heldUnfired(sys: E2E, ids: readonly string[]): Promise<number> {
  const { rows } = await sys.env.db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id
     WHERE ti.id = ANY($1::uuid[]) AND t.triggerer_id IS NOT NULL AND t.event IS NULL`,
    [ids],
  );
  return rows[0]!.n;
}

describe('crashes and lost messages: no accepted task is lost or stuck', () => {
  let sys: E2E;
  beforeEach(async () => {
    sys = await startSystem('crashes');
  });
  afterEach(async () => {
    await sys?.close();
  });

  test('kill -9 of the worker during a callback: the task is retried and completes', async () => {
    const { id } = await sys.client.enqueue({
      task: 'test.slow-callback',
      args: { delayMs: 100, holdMs: 60_000 },
      maxTries: 2,
      retry: { delayMs: 100, backoff: 1 },
    });
    // The callback is running: try 1, next_method set, state running.
    await waitFor(async () => {
      const r = await sys.env.db.pool.query("SELECT 1 FROM task_instance WHERE id = $1 AND state = 'running' AND next_method = 'resume'", [id]);
      return r.rowCount === 1;
    });
    sys.app('worker').kill('SIGKILL');
    const replacement = new AppProcess('worker', sys.env.appEnv());
    sys.apps.push(replacement);
    await replacement.started(START_TIMEOUT_MS);
    const done = await sys.client.waitFor(id, { timeoutMs: 30_000 });
    expect(done.state).toBe('success');
    expect(done.result).toEqual({ tryNumber: 2 });
    const log = await transitions(sys.env, id);
    // The reaper moved the dead worker's run to up_for_retry; the retry ran once.
    expect(count(log, 'running', 'up_for_retry')).toBe(1);
    expect(count(log, 'running', 'success')).toBe(1);
  }, 180_000);

  test('a worker frozen past the reap threshold: the retry that lands on it again keeps its heartbeat', async () => {
    // Try 1 holds its slot for 6 s and ignores the abort. The worker is frozen (SIGSTOP, as in a
    // long pause of its VM) until the scheduler has reaped try 1 and dispatched try 2. On the same
    // worker, try 2 then runs beside the end of try 1: try 1's end must not drop try 2 from the
    // runs the worker heartbeats, or try 2 is reaped in turn while it runs.
    const { id } = await sys.client.enqueue({ task: 'test.blocking-wait', args: { ms: 6000 }, maxTries: 3, retry: { delayMs: 100, backoff: 1 } });
    await waitFor(async () => {
      const r = await sys.env.db.pool.query("SELECT 1 FROM task_instance WHERE id = $1 AND state = 'running'", [id]);
      return r.rowCount === 1;
    });
    const worker = sys.app('worker');
    worker.kill('SIGSTOP');
    try {
      await waitFor(
        async () => {
          const r = await sys.env.db.pool.query("SELECT 1 FROM task_instance WHERE id = $1 AND try_number = 2 AND state = 'queued'", [id]);
          return r.rowCount === 1;
        },
        15_000,
        'try 1 reaped and try 2 dispatched',
      );
    } finally {
      worker.kill('SIGCONT');
    }
    const done = await sys.client.waitFor(id, { timeoutMs: 30_000 });
    expect(done.state).toBe('success');
    const log = await transitions(sys.env, id);
    expect(count(log, 'running', 'up_for_retry')).toBe(1);
    expect(log.filter((r) => r.to_state === 'success').map((r) => r.try_number)).toEqual([2]);
  }, 180_000);

  test('kill -9 of the triggerer while tasks are deferred: after a restart every task completes once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 5000 + i * 20 } })).id);
    // Every task has deferred, and no trigger of theirs waits unclaimed (held, or already fired
    // if the machine was slow): then kill the triggerer.
    await waitFor(async () => (await tasksThatDeferred(sys, ids)) === ids.length, 30_000, 'all deferred');
    await waitFor(async () => (await unclaimed(sys, ids)) === 0, 30_000, 'every trigger claimed');
    // The kill hits triggers it was running: a kill after every trigger fired would test nothing.
    expect(await heldUnfired(sys, ids)).toBeGreaterThan(0);
    sys.app('triggerer').kill('SIGKILL');
    const replacement = new AppProcess('triggerer', sys.env.appEnv());
    sys.apps.push(replacement);
    await replacement.started(START_TIMEOUT_MS);
    await expectEachCompletedOnce(sys, ids);
  }, 180_000);

  test('Redis emptied while tasks are queued and deferred: every task still completes once', async () => {
    // Stop the worker so that dispatched tasks sit queued, with their jobs only in Redis.
    await sys.app('worker').stop();
    const queued: string[] = [];
    for (let i = 0; i < 10; i++) queued.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 200 } })).id);
    await waitFor(async () => (await stateCounts(sys.env, queued)).queued === queued.length, 15_000, 'all queued');
    // And some deferred, with a worker that defers them and is stopped again.
    const worker = new AppProcess('worker', sys.env.appEnv());
    sys.apps.push(worker);
    const deferred: string[] = [];
    for (let i = 0; i < 10; i++) deferred.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 2500 } })).id);
    await worker.started(START_TIMEOUT_MS);
    await waitFor(async () => (await tasksThatDeferred(sys, deferred)) === deferred.length, 30_000, 'all deferred once');
    // The first ten resumed too; stop the worker while some are queued again.
    await worker.stop();
    // Every key of this deployment's prefix is deleted: for this system, Redis is empty.
    const deleted = await deleteKeys(sys.env.redis, sys.env.prefix);
    expect(deleted).toBeGreaterThan(0);
    const again = new AppProcess('worker', sys.env.appEnv());
    sys.apps.push(again);
    await again.started(START_TIMEOUT_MS);
    await expectEachCompletedOnce(sys, [...queued, ...deferred]);
  }, 180_000);
});
