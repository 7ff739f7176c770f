import { Queue } from 'bullmq';
import { bullPrefix, producerConnection, taskDispatch } from '@deferrable/queues';
import { AppProcess } from '@deferrable/testkit';
import { startSystem, START_TIMEOUT_MS, waitAll, type E2E } from './helpers';

// A burst larger than the dispatch mark: the scheduler keeps each queue's backlog of queued tasks
// (jobs in Redis) near the mark and leaves the rest scheduled in PostgreSQL, topping the queue up
// as the workers drain it, so every task still runs, and in priority order.
const ENV = { DEFERRABLE_WORKER_SLOTS: '2', DEFERRABLE_DISPATCH_AHEAD: '5', DEFERRABLE_DISPATCH_BATCH: '3' };

describe('dispatch backlog mark', () => {
  let sys: E2E;
  beforeAll(async () => {
    // No scheduler yet: the test starts it once the whole burst is recorded.
    sys = await startSystem('backlog', ENV, ['triggerer', 'worker']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('a burst of 60 tasks never puts more than the mark plus one batch into Redis, and all of them run', async () => {
    const queue = new Queue(taskDispatch.queueName('default'), { connection: producerConnection(sys.env.redisUrl), prefix: bullPrefix(sys.env.prefix) });
    try {
      // The whole burst is due before any scheduler runs, so the dispatch order is the priority
      // order, not arrival order.
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) ids.push((await sys.client.enqueue({ task: 'test.blocking-wait', args: { ms: 20 }, priority: i % 3 })).id);
      const scheduler = new AppProcess('scheduler', sys.env.appEnv(ENV));
      sys.apps.push(scheduler);
      const schedulerUp = scheduler.started(START_TIMEOUT_MS);
      let peakJobs = 0;
      let peakQueued = 0;
      let sawHeldBack = false;
      let done = false;
      const all = waitAll(sys.client, ids, 60_000).finally(() => {
        done = true;
      });
      while (!done) {
        const counts = await queue.getJobCounts('waiting', 'prioritized');
        peakJobs = Math.max(peakJobs, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
        const { rows } = await sys.env.db.pool.query<{ queued: number; scheduled: number }>(
          `SELECT count(*) FILTER (WHERE state = 'queued')::int AS queued, count(*) FILTER (WHERE state = 'scheduled')::int AS scheduled
           FROM task_instance WHERE id = ANY($1::uuid[])`,
          [ids],
        );
        peakQueued = Math.max(peakQueued, rows[0]!.queued);
        if (rows[0]!.scheduled > 0 && rows[0]!.queued > 0) sawHeldBack = true;
        await new Promise((r) => setTimeout(r, 10));
      }
      await schedulerUp;
      const views = await all;
      expect(views.every((v) => v.state === 'success')).toBe(true);
      // mark = max(5, 2 x 2 slots) = 5; one dispatch batch (3) may overshoot it by up to 2.
      expect(peakQueued).toBeLessThanOrEqual(7);
      expect(peakJobs).toBeLessThanOrEqual(7);
      // The rest really waited in PostgreSQL while some were queued (60 tasks, at most 7 queued at once).
      expect(sawHeldBack).toBe(true);
      // Held back in PostgreSQL, the tasks are dispatched in priority order: every priority-2
      // task before any priority-0 one.
      const { rows } = await sys.env.db.pool.query<{ priority: number }>(
        `SELECT ti.priority FROM task_transition tt JOIN task_instance ti ON ti.id = tt.task_instance_id
         WHERE tt.task_instance_id = ANY($1::uuid[]) AND tt.to_state = 'queued' ORDER BY tt.id`,
        [ids],
      );
      const order = rows.map((r) => r.priority);
      expect(order).toHaveLength(60);
      expect(order.lastIndexOf(2)).toBeLessThan(order.indexOf(0));
    } finally {
      await queue.close();
    }
  });
});
