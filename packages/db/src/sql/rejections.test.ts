import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { recordRejection } from './rejections';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv('rejections');
});

afterAll(async () => {
  await env?.cleanup();
});

test('a rejected task request is stored redacted: the task name shown, its arguments never', async () => {
  await recordRejection(env.db.pool, {
    source: 'queue:task-requests',
    jobId: 'r1',
    reason: 'invalid task request: priority: expected number',
    excerpt: { task: 'billing.charge', args: { user: 'ann', password: 'hunter2' }, priority: 'hunter2', idempotencyKey: 'order-17' },
  });
  // A caller that passes a string is redacted too.
  await recordRejection(env.db.pool, { source: 'queue:task-requests', jobId: 'r2', reason: 'not JSON', excerpt: 'password=hunter2' });
  const { rows } = await env.db.pool.query<{ job_id: string; excerpt: string }>(
    "SELECT job_id, excerpt FROM rejection WHERE job_id IN ('r1', 'r2') ORDER BY job_id",
  );
  expect(rows.map((r) => r.excerpt).join()).not.toContain('hunter2');
  expect(JSON.parse(rows[0]!.excerpt)).toEqual({
    task: 'billing.charge',
    args: '[redacted object, 2 keys]',
    priority: '[redacted string, 7 chars]',
    idempotencyKey: 'order-17',
  });
  expect(JSON.parse(rows[1]!.excerpt)).toBe('[redacted string, 16 chars]');
});
