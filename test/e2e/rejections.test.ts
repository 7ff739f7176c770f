import { Queue } from 'bullmq';
import { bullPrefix, producerConnection, taskRequests } from '@deferrable/queues';
import { startSystem, waitFor, type E2E } from './helpers';

/** Input refused where it entered is recorded for people to read, without what it carried. */
describe('rejections are redacted', () => {
  let sys: E2E;
  let queue: Queue;
  beforeAll(async () => {
    sys = await startSystem('rejections', {}, ['scheduler']);
    queue = new Queue(taskRequests.queueName(), { connection: producerConnection(sys.env.redisUrl), prefix: bullPrefix(sys.env.prefix) });
  });
  afterAll(async () => {
    await queue?.close();
    await sys?.close();
  });

  test('a refused task request whose arguments hold a secret leaves the secret out of its rejection row, and names the task', async () => {
    // Sent by another service with a plain BullMQ client: no SDK check on the way.
    const job = await queue.add(taskRequests.jobName, { task: 'test.defer-once', args: { delayMs: 1, password: 'hunter2' }, priority: 'urgent' });
    const row = await waitFor(
      async () =>
        (await sys.env.db.pool.query<{ reason: string; excerpt: string }>('SELECT reason, excerpt FROM rejection WHERE job_id = $1', [job.id])).rows[0],
      15_000,
      'the rejection row',
    );
    expect(row.excerpt).not.toContain('hunter2');
    expect(row.reason).not.toContain('hunter2');
    expect(JSON.parse(row.excerpt)).toMatchObject({ task: 'test.defer-once', args: '[redacted object, 2 keys]' });
    const { rows } = await sys.env.db.pool.query('SELECT count(*)::int AS n FROM task_instance');
    expect(rows[0].n).toBe(0);
  });
});
