import { count, startSystem, transitions, waitAll, type E2E } from './helpers';

describe('a deferrable task, end to end (scheduler, triggerer and worker as processes)', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('deferresume', { DEFERRABLE_WORKER_SLOTS: '2' });
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('a task defers on a 1 s timer and resumes in its callback with the event payload', async () => {
    const enqueuedAt = Date.now();
    const { id } = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 1000, tag: 'a' } });
    const done = await sys.client.waitFor(id, { timeoutMs: 15_000 });
    expect(done.state).toBe('success');
    const result = done.result as { event: { moment: string; firedAt: string }; kwargs: { tag: string }; tryNumber: number };
    expect(result.kwargs).toEqual({ tag: 'a' });
    expect(result.tryNumber).toBe(1);
    // The event is the timer's: it fired at (or just after) its moment, about 1 s after enqueue.
    expect(Date.parse(result.event.firedAt)).toBeGreaterThanOrEqual(Date.parse(result.event.moment));
    expect(Date.parse(result.event.moment) - enqueuedAt).toBeGreaterThanOrEqual(900);
    const log = await transitions(sys.env, id);
    expect(log.map((r) => `${r.from_state}->${r.to_state}`)).toEqual([
      'null->scheduled',
      'scheduled->queued',
      'queued->running',
      'running->deferred',
      'deferred->scheduled',
      'scheduled->queued',
      'queued->running',
      'running->success',
    ]);
    // The trigger is gone once no task waits on it.
    const { rows } = await sys.env.db.pool.query('SELECT count(*)::int AS n FROM trigger');
    await expect(
      (async () => {
        for (let i = 0; i < 50; i++) {
          const r = await sys.env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger');
          if (r.rows[0]!.n === 0) return 0;
          await new Promise((res) => setTimeout(res, 100));
        }
        return rows[0].n;
      })(),
    ).resolves.toBe(0);
  });

  test('slots are freed: 50 tasks deferring 2 s each on 2 slots finish far sooner than the 50 s blocking needs', async () => {
    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 2000 } })).id);
    const views = await waitAll(sys.client, ids, 40_000);
    const elapsed = Date.now() - started;
    expect(views.every((v) => v.state === 'success')).toBe(true);
    // Blocking would need 50 * 2 s / 2 slots = 50 s. Deferred, all wait at once.
    expect(elapsed).toBeLessThan(15_000);
    // Never more than 2 runs at once: replay the audit log of running intervals.
    const { rows } = await sys.env.db.pool.query<{ at: Date; delta: number }>(
      `SELECT at, CASE WHEN to_state = 'running' THEN 1 ELSE -1 END AS delta FROM task_transition
       WHERE task_instance_id = ANY($1::uuid[]) AND (to_state = 'running' OR from_state = 'running')
       ORDER BY at, delta`,
      [ids],
    );
    let running = 0;
    let peak = 0;
    for (const r of rows) {
      running += r.delta;
      peak = Math.max(peak, running);
    }
    expect(rows.length).toBe(50 * 4);
    expect(peak).toBeLessThanOrEqual(2);
    for (const id of ids.slice(0, 5)) {
      const log = await transitions(sys.env, id);
      expect(count(log, 'queued', 'running')).toBe(2);
      expect(count(log, 'running', 'success')).toBe(1);
    }
  });

  test('the same idempotency key enqueued twice yields one task instance', async () => {
    const a = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    const b = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    expect(a.created).toBe(true);
    expect(b).toEqual({ id: a.id, created: false });
    // Also through the task-request queue, as another service would.
    await sys.client.request({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    await sys.client.request({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-43' });
    const other = await (async () => {
      for (let i = 0; i < 100; i++) {
        const r = await sys.env.db.pool.query<{ id: string }>("SELECT id FROM task_instance WHERE idempotency_key = 'order-43'");
        if (r.rows[0]) return r.rows[0].id;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('request for order-43 never recorded');
    })();
    await waitAll(sys.client, [a.id, other]);
    const { rows } = await sys.env.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM task_instance WHERE idempotency_key = 'order-42'",
    );
    expect(rows[0]!.n).toBe(1);
  });
});
