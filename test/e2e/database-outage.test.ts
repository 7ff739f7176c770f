import { Client } from 'pg';
import { count, startSystem, transitions, waitAll, waitFor, type E2E } from './helpers';

/**
 * ARCHITECTURE invariant 1 for PostgreSQL: the database goes away while tasks are at every step,
 * and comes back. Restarting the shared server would disturb the test files running beside this
 * one, so the outage is this test's own database: new connections are refused and every
 * existing one is terminated, which is what the apps see of a restart.
 */
describe('PostgreSQL outage: no accepted task is lost, stuck or run twice', () => {
  let sys: E2E;
  beforeAll(async () => {
    // The outage is shorter than the heartbeat and health thresholds, as a restart is with the
    // production defaults (30 s and 10 s); testkit's fast values would have runs reaped after it.
    sys = await startSystem('db-outage', {
      DEFERRABLE_REAP_AFTER_MS: '15000',
      DEFERRABLE_HEALTH_THRESHOLD_MS: '15000',
      DEFERRABLE_WORKER_SLOTS: '8',
    });
  });
  afterAll(async () => {
    await sys?.close();
  });

  async function outage(ms: number, during: () => Promise<void>): Promise<void> {
    const admin = new Client({ connectionString: sys.env.databaseUrl.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${sys.env.databaseName}" WITH ALLOW_CONNECTIONS false`);
      const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
        sys.env.databaseName,
      ]);
      // Every app holds connections: the outage really cut them.
      expect(killed.rowCount).toBeGreaterThanOrEqual(3);
      const end = Date.now() + ms;
      await during();
      await new Promise((r) => setTimeout(r, end - Date.now()));
    } finally {
      await admin.query(`ALTER DATABASE "${sys.env.databaseName}" WITH ALLOW_CONNECTIONS true`);
      await admin.end();
    }
  }

  test('a 3 s outage while callbacks run and tasks defer, wait and fire: every task succeeds once', async () => {
    // Timers due from 0.1 s to 3 s after each deferral: they fire before, during and after the
    // outage, and the tasks start and defer on the other slots meanwhile.
    const waiting = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => (await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 100 + i * 100 } })).id),
    );
    // Callbacks that hold their slot for 1.5 s: the outage starts as soon as all four run, so each
    // of them finishes, and records its success, while the database is away.
    const holding = await Promise.all(
      Array.from({ length: 4 }, async () => (await sys.client.enqueue({ task: 'test.slow-callback', args: { delayMs: 50, holdMs: 1500 } })).id),
    );
    await waitFor(
      async () => {
        const r = await sys.env.db.pool.query("SELECT 1 FROM task_instance WHERE id = ANY($1::uuid[]) AND state = 'running' AND next_method = 'resume'", [
          holding,
        ]);
        return r.rowCount === holding.length;
      },
      15_000,
      'the holding callbacks running',
      20,
    );
    const ids = [...holding, ...waiting];
    // A request from another service arrives on the task-request queue while the database is away.
    await outage(3000, () => sys.client.request({ task: 'test.defer-once', args: { delayMs: 100, tag: 'requested' } }));

    const views = await waitAll(sys.client, ids, 60_000);
    expect(views.filter((v) => v.state !== 'success').map((v) => [v.id, v.state])).toEqual([]);
    for (const id of ids) {
      const log = await transitions(sys.env, id);
      // One try, resumed once, its callback succeeded once: nothing was lost, reaped or doubled.
      expect(log.every((r) => r.try_number === 1)).toBe(true);
      expect(count(log, 'deferred', 'scheduled')).toBe(1);
      expect(count(log, 'running', 'success')).toBe(1);
      expect(count(log, 'running', 'up_for_retry')).toBe(0);
    }
    // The holding callbacks finished on their first try: their success was not taken for a failure.
    for (const v of views.filter((x) => holding.includes(x.id))) expect(v.result).toEqual({ tryNumber: 1 });
    // They did meet the outage: the worker kept their successes and sent them again.
    const retried = sys.app('worker').logs.filter((r) => r.msg === 'database unreachable; retrying the write' && r.step === 'success');
    // Each holding task did; another callback may also have been recording its success as the
    // outage began (it is cut at any instant), and it resent its write too, which is right.
    const retriedIds = new Set(retried.map((r) => r.taskInstanceId));
    expect(holding.filter((id) => !retriedIds.has(id))).toEqual([]);
    // The request was kept until it could be recorded (not rejected), and its task ran.
    const requested = await waitFor(
      async () => {
        const r = await sys.env.db.pool.query<{ id: string }>("SELECT id FROM task_instance WHERE args->>'tag' = 'requested'");
        return r.rows.length === 1 ? r.rows[0] : undefined;
      },
      30_000,
      'the request recorded',
    );
    expect((await sys.client.waitFor(requested.id, { timeoutMs: 30_000 })).state).toBe('success');
    expect((await sys.env.db.pool.query('SELECT 1 FROM rejection')).rowCount).toBe(0);
    expect(sys.app('scheduler').logs.some((r) => r.msg === 'database unreachable; retrying the task request')).toBe(true);
    // No process gave up: each is still the one started at the beginning.
    expect(sys.apps.map((a) => [a.name, a.running])).toEqual([
      ['scheduler', true],
      ['triggerer', true],
      ['worker', true],
    ]);
    // Jest's limit covers the waits above (60 s for the tasks, 30 s for the request): on a busy
    // machine the recovery after the outage takes longer than Jest's default 60 s for the whole test.
  }, 150_000);
});
