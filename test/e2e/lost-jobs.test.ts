import { Queue } from 'bullmq';
import { bullPrefix, producerConnection, taskDispatch } from '@deferrable/queues';
import { AppProcess } from '@deferrable/testkit';
import { count, START_TIMEOUT_MS, startSystem, transitions, waitAll, waitFor, type E2E } from './helpers';

// A few dispatch jobs vanish from Redis (a failover that lost the latest writes, a publish that
// failed) while the queue still holds many live jobs of other tasks. The scheduler must find the
// lost ones by their own jobs, not by a count of the queue.
describe('lost dispatch jobs in a busy queue', () => {
  let sys: E2E;
  beforeAll(async () => {
    // No worker yet, so every job stays waiting; small scan batches, as under a long backlog.
    sys = await startSystem('lost-jobs', { DEFERRABLE_DISPATCH_BATCH: '5' }, ['scheduler']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('the oldest queued tasks lose their jobs: they are re-dispatched while the others wait, then all run once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) ids.push((await sys.client.enqueue({ task: 'test.blocking-wait', args: { ms: 10 } })).id);
    const queued = async () =>
      (
        await sys.env.db.pool.query<{ id: string; try_number: number; dispatch_attempt: number }>(
          "SELECT id, try_number, dispatch_attempt FROM task_instance WHERE id = ANY($1::uuid[]) AND state = 'queued' ORDER BY queued_at, id",
          [ids],
        )
      ).rows;
    await waitFor(async () => (await queued()).length === ids.length, 15_000, 'all queued');

    const queue = new Queue(taskDispatch.queueName('default'), { connection: producerConnection(sys.env.redisUrl), prefix: bullPrefix(sys.env.prefix) });
    try {
      const oldest = (await queued()).slice(0, 3);
      for (const row of oldest) {
        const jobId = taskDispatch.jobId({ taskInstanceId: row.id, tryNumber: row.try_number, dispatchAttempt: row.dispatch_attempt })!;
        expect(await queue.remove(jobId)).toBe(1);
      }
      const lost = new Set(oldest.map((r) => r.id));
      await waitFor(async () => (await queued()).filter((r) => lost.has(r.id) && r.dispatch_attempt === 2).length === 3, 15_000, 'the lost ones re-dispatched');
      // The tasks whose jobs were there kept them.
      const rows = await queued();
      expect(rows.filter((r) => !lost.has(r.id)).map((r) => r.dispatch_attempt)).toEqual(Array(12).fill(1));
      expect((await queue.getJobCounts('waiting', 'prioritized')).prioritized).toBe(15);
    } finally {
      await queue.close();
    }

    const worker = new AppProcess('worker', sys.env.appEnv());
    sys.apps.push(worker);
    await worker.started(START_TIMEOUT_MS);
    const views = await waitAll(sys.client, ids, 30_000);
    expect(views.map((v) => v.state)).toEqual(Array(15).fill('success'));
    for (const id of ids) expect(count(await transitions(sys.env, id), 'running', 'success')).toBe(1);
  });
});
