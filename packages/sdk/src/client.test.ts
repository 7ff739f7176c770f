import { randomUUID } from 'node:crypto';
import { publishTaskTypes } from '@deferrable/catalog';
import { registerJob } from '@deferrable/db';
import { DatabaseUnavailableError, defineTask, InvalidInputError, InvalidTransitionError, TaskNotFoundError } from '@deferrable/domain';
import { createTestEnv, PG_ADMIN_URL, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import { z } from 'zod';
import { DeferrableClient } from './client';

const sum = defineTask({ name: 'sdk.sum', args: z.object({ a: z.number(), b: z.number() }), execute: (ctx) => ctx.args.a + ctx.args.b });

describe('DeferrableClient: typed errors (real PostgreSQL)', () => {
  let env: TestEnv;
  let client: DeferrableClient;
  beforeAll(async () => {
    env = await createTestEnv('sdk');
    const jobId = randomUUID();
    await registerJob(env.db.pool, { id: jobId, jobType: 'worker', hostname: 'h', pid: 1, capacity: 1, queues: ['default'] });
    await publishTaskTypes(env.db.pool, jobId, [sum], { aliveWithinMs: 60_000 });
    client = new DeferrableClient({ databaseUrl: env.databaseUrl, actor: 'sdk-test', retryForMs: 20_000 });
  });
  afterAll(async () => {
    await client.close();
    await env.cleanup();
  });

  test('get and cancel of an id that is not a UUID: InvalidInputError, not a driver error', async () => {
    await expect(client.get('not-a-uuid')).rejects.toThrow(InvalidInputError);
    await expect(client.cancel('not-a-uuid')).rejects.toThrow(/invalid task instance id: id: not a UUID: "not-a-uuid"/);
  });

  test('cancel: the cancelled task; an unknown id and an ended task are refused with why', async () => {
    const { id } = await client.enqueue({ task: 'sdk.sum', args: { a: 1, b: 2 } });
    expect(await client.cancel(id)).toMatchObject({ id, state: 'cancelled' });
    const again = await client.cancel(id).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(InvalidTransitionError);
    expect(again).toMatchObject({ code: 'INVALID_TRANSITION', from: 'cancelled', to: 'cancelled' });
    await expect(client.cancel(randomUUID())).rejects.toBeInstanceOf(TaskNotFoundError);
    expect(await client.get(randomUUID())).toBeNull();
  });

  test('an unreachable database: DatabaseUnavailableError, retryable, from every method', async () => {
    const away = new DeferrableClient({ databaseUrl: 'postgresql://postgres@127.0.0.1:1/none', retryForMs: 0 });
    try {
      for (const call of [() => away.get(randomUUID()), () => away.enqueue({ task: 'sdk.sum', args: {} }), () => away.cancel(randomUUID())]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
        expect(err).toMatchObject({ code: 'DATABASE_UNAVAILABLE', retryable: true });
        expect((err as Error).message).not.toMatch(/invocation|client\.js/);
      }
    } finally {
      await away.close();
    }
  });

  test('through a database outage, an enqueue with a key waits and records one task; without a key it throws at once', async () => {
    const admin = new Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [env.databaseName]);
      const keyed = client.enqueue({ task: 'sdk.sum', args: { a: 2, b: 2 }, idempotencyKey: 'outage-1' });
      const unkeyed = await client.enqueue({ task: 'sdk.sum', args: { a: 3, b: 3 } }).catch((e: unknown) => e);
      expect(unkeyed).toBeInstanceOf(DatabaseUnavailableError);
      // The queue path outlasts the outage: the request is added, and the scheduler checks it later.
      const requester = new DeferrableClient({ databaseUrl: env.databaseUrl, redisUrl: env.redisUrl, prefix: env.prefix });
      try {
        await requester.request({ task: 'sdk.sum', args: { a: 4, b: 4 }, idempotencyKey: 'outage-request' });
      } finally {
        await requester.close();
      }
      const queued = await env.redis.keys(`${env.prefix}:task-requests:*`);
      expect(queued.length).toBeGreaterThan(0);
      // The outage lasts a while (a restart takes seconds); the keyed enqueue keeps trying.
      await new Promise((r) => setTimeout(r, 1500));
      await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`);
      const { id, created } = await keyed;
      expect(created).toBe(true);
      expect(await client.enqueue({ task: 'sdk.sum', args: { a: 2, b: 2 }, idempotencyKey: 'outage-1' })).toEqual({ id, created: false });
      const rows = await env.db.pool.query("SELECT count(*)::int AS n FROM task_instance WHERE idempotency_key = 'outage-1'");
      expect(rows.rows[0].n).toBe(1);
    } finally {
      await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`);
      await admin.end();
    }
  });
});
