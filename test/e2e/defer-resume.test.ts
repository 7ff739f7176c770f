import { count, startSystem, transitions, waitAll, waitFor, type E2E } from './helpers';

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
    await waitFor(
      async () => (await sys.env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM trigger')).rows[0]!.n === 0,
      15_000,
      'the trigger deleted',
    );
  });

  test('slots are freed: 50 tasks deferring 2 s each on 2 slots wait at the same time, never more than 2 running', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 2000 } })).id);
    const views = await waitAll(sys.client, ids, 100_000);
    expect(views.every((v) => v.state === 'success')).toBe(true);
    // Replay the audit log: how many ran at once, and how many waited deferred at once. Blocking
    // on 2 slots, at most 2 could wait at a time; freed slots let more than 2 wait together.
    const { rows } = await sys.env.db.pool.query<{ at: Date; state: string; delta: number }>(
      `SELECT at, s.state, CASE WHEN to_state::text = s.state THEN 1 ELSE -1 END AS delta
       FROM task_transition CROSS JOIN (VALUES ('running'), ('deferred')) AS s(state)
       WHERE task_instance_id = ANY($1::uuid[]) AND (to_state::text = s.state OR from_state::text = s.state)
       ORDER BY at, delta`,
      [ids],
    );
    const peak = { running: 0, deferred: 0 };
    const now = { running: 0, deferred: 0 };
    for (const r of rows) {
      const s = r.state as keyof typeof now;
      now[s] += r.delta;
      peak[s] = Math.max(peak[s], now[s]);
    }
    console.log(`50 deferring tasks on 2 slots: at most ${peak.running} running and ${peak.deferred} deferred at once`);
    expect(rows.filter((r) => r.state === 'running')).toHaveLength(50 * 4);
    expect(rows.filter((r) => r.state === 'deferred')).toHaveLength(50 * 2);
    expect(peak.running).toBeLessThanOrEqual(2);
    expect(peak.deferred).toBeGreaterThan(2);
    for (const id of ids.slice(0, 5)) {
      const log = await transitions(sys.env, id);
      expect(count(log, 'queued', 'running')).toBe(2);
      expect(count(log, 'running', 'success')).toBe(1);
    }
  }, 120_000);

  test('the same idempotency key enqueued twice yields one task instance', async () => {
    const a = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    const b = await sys.client.enqueue({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    expect(a.created).toBe(true);
    expect(b).toEqual({ id: a.id, created: false });
    // Also through the task-request queue, as another service would.
    await sys.client.request({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-42' });
    await sys.client.request({ task: 'test.defer-once', args: { delayMs: 10 }, idempotencyKey: 'order-43' });
    const other = await waitFor(
      async () => {
        const r = await sys.env.db.pool.query<{ id: string }>("SELECT id FROM task_instance WHERE idempotency_key = 'order-43'");
        return r.rows[0]?.id;
      },
      30_000,
      'the request for order-43 recorded',
    );
    await waitAll(sys.client, [a.id, other]);
    const { rows } = await sys.env.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM task_instance WHERE idempotency_key = 'order-42'");
    expect(rows[0]!.n).toBe(1);
  });
});
