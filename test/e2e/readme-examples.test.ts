import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bullPrefix, producerConnection, taskRequests } from '@deferrable/queues';
import { InvalidInputError, UnknownTaskTypeError } from '@deferrable/sdk';
import { Queue } from 'bullmq';
import { startSystem, waitFor, type E2E } from './helpers';

const REPO = path.resolve(__dirname, '../..');

/**
 * The README's examples as written: its task definition is the one the apps load
 * (packages/examples), enqueued through the SDK and through the task-request queue, with the
 * defaults the definition sets; and bad input through each entry is refused and writes no task.
 */
describe('README examples', () => {
  let sys: E2E;
  let requests: Queue;
  beforeAll(async () => {
    sys = await startSystem('readme', { DEFERRABLE_MODULES: '@deferrable/examples' });
    // What a service in another language does: a plain BullMQ add to the task-request queue.
    requests = new Queue(taskRequests.queueName(), { connection: producerConnection(sys.env.redisUrl), prefix: bullPrefix(sys.env.prefix) });
  });
  afterAll(async () => {
    await requests?.close();
    await sys?.close();
  });

  const row = async (where: string, value: string) =>
    (await sys.env.db.pool.query(`SELECT * FROM task_instance WHERE ${where} = $1`, [value])).rows[0] as Record<string, unknown> | undefined;
  const taskCount = async () => (await sys.env.db.pool.query('SELECT count(*)::int AS n FROM task_instance')).rows[0].n as number;

  test("the README's task definition is packages/examples' wait-and-report, word for word", () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const block = /```ts\n(import \{ defineTask \}[\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const file = readFileSync(path.join(REPO, 'packages/examples/src/wait-and-report.ts'), 'utf8').replace(/^(\/\/.*\n)+/, '');
    expect(block!.replace('export const tasks = [waitAndReport];\n', '')).toBe(file);
  });

  test('through the SDK: the definition sets tries, retry and timeout; the task defers and resumes', async () => {
    const client = sys.client;
    const { id, created } = await client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 1 }, idempotencyKey: 'order-42' });
    expect(created).toBe(true);
    expect(await client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 1 }, idempotencyKey: 'order-42' })).toEqual({ id, created: false });
    expect(await row('id', id)).toMatchObject({ queue: 'default', max_tries: 3, retry_delay_ms: 1000, retry_backoff: 2, execution_timeout_ms: 60_000 });
    const done = await client.waitFor(id, { timeoutMs: 60_000 });
    expect(done.state).toBe('success');
    expect(done.result).toMatchObject({ event: { moment: expect.any(String) }, kwargs: { startedAt: expect.any(Number) } });
  });

  test('through the task-request queue (SDK request() and a plain BullMQ add): the same defaults', async () => {
    await sys.client.request({ task: 'examples.wait-and-report', args: { seconds: 0 }, idempotencyKey: 'queued-1', maxTries: 5 });
    await requests.add('task-request', { task: 'examples.wait-and-report', args: { seconds: 0 }, idempotencyKey: 'queued-2' });
    for (const [key, tries] of [
      ['queued-1', 5],
      ['queued-2', 3],
    ] as const) {
      const r = await waitFor(() => row('idempotency_key', key), 20_000, `task ${key}`);
      expect(r).toMatchObject({ max_tries: tries, retry_delay_ms: 1000, execution_timeout_ms: 60_000 });
      expect((await sys.client.waitFor(r.id as string, { timeoutMs: 60_000 })).state).toBe('success');
    }
  });

  test('bad input through the SDK: typed errors, nothing written', async () => {
    const before = await taskCount();
    const unknown = await sys.client.enqueue({ task: 'examples.wait-and-reprot', args: { seconds: 1 } }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownTaskTypeError);
    expect((unknown as Error).message).toMatch(/did you mean "examples.wait-and-report"/);
    const bad = await sys.client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 'five' } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidInputError);
    expect((bad as InvalidInputError).issues).toEqual([{ path: 'args.seconds', message: 'must be number' }]);
    await expect(sys.client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 1, blob: 'x'.repeat(300_000) } })).rejects.toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
    });
    await expect(sys.client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 1 }, queue: 'heavy' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(sys.client.request({ task: 'nope', args: {} })).rejects.toBeInstanceOf(UnknownTaskTypeError);
    expect(await taskCount()).toBe(before);
  });

  test('bad input through the task-request queue: a rejection row each (redacted), the job failed, nothing written', async () => {
    const before = await taskCount();
    const jobs = await Promise.all([
      requests.add('task-request', { task: 'no.such-task', args: {} }),
      requests.add('task-request', { task: 'examples.wait-and-report', args: { seconds: -1, secret: 'hunter2' } }),
      requests.add('task-request', { task: 'examples.wait-and-report', args: { seconds: 1, blob: 'x'.repeat(300_000) } }),
      requests.add('task-request', { task: 'examples.wait-and-report', args: { seconds: 1 }, queue: 'reprots' }),
      requests.add('task-request', { hello: 'world' }),
    ]);
    const ids = jobs.map((j) => j.id!);
    const rejections = await waitFor(
      async () => {
        const r = await sys.env.db.pool.query('SELECT job_id, reason FROM rejection WHERE job_id = ANY($1::text[]) ORDER BY id', [ids]);
        return r.rowCount === ids.length ? (r.rows as { job_id: string; reason: string }[]) : undefined;
      },
      20_000,
      'a rejection per bad request',
    );
    const reason = (i: number) => rejections.find((r) => r.job_id === ids[i])!.reason;
    expect(reason(0)).toMatch(/no task type named "no.such-task"/);
    expect(reason(1)).toMatch(/args.seconds: must be >= 0/);
    expect(reason(2)).toMatch(/task arguments is \d+ bytes, over the limit/);
    expect(reason(3)).toMatch(/runs on queue "default", not "reprots"/);
    expect(reason(4)).toMatch(/invalid task request/);
    for (const job of jobs) await waitFor(async () => (await requests.getJobState(job.id!)) === 'failed', 10_000, 'job failed');
    expect(await taskCount()).toBe(before);
  });
});
