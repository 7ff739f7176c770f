import { randomUUID } from 'node:crypto';
import { publishTaskTypes, TaskCatalog } from '@deferrable/catalog';
import { createApiToken, registerJob } from '@deferrable/db';
import { defineTask } from '@deferrable/domain';
import { silentLogger } from '@deferrable/logging';
import { DeferrableHttpClient, HttpApiError } from '@deferrable/sdk';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { z } from 'zod';
import { TokenVerifier } from './auth';
import { buildApi } from './server';

// The SDK's HTTP client against the API over a real socket.
const add = defineTask({ name: 'http.add', args: z.object({ a: z.number(), b: z.number() }), execute: (ctx) => ctx.args.a + ctx.args.b });

let env: TestEnv;
let app: Awaited<ReturnType<typeof buildApi>>;
let baseUrl: string;
let operator: DeferrableHttpClient;

beforeAll(async () => {
  env = await createTestEnv('httpclient');
  const worker = randomUUID();
  await registerJob(env.db.pool, { id: worker, jobType: 'worker', hostname: 'h', pid: 1, capacity: 1, queues: ['default'] });
  await publishTaskTypes(env.db.pool, worker, [add], { aliveWithinMs: 60_000 });
  app = await buildApi(
    { db: env.db, catalog: new TaskCatalog(env.db.pool), tokens: new TokenVerifier(env.db.pool), healthThresholdMs: 10_000 },
    { logger: silentLogger(), rateLimitPerMinute: 10_000, bodyLimit: 64 * 1024, sessionSecret: 'x'.repeat(32), sessionTtlMs: 3_600_000, secureCookies: false },
  );
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  const { secret } = await createApiToken(env.db.pool, { name: 'svc', role: 'operator', expiresAt: null });
  operator = new DeferrableHttpClient({ baseUrl, token: secret });
});
afterAll(async () => {
  await app?.close();
  await env?.cleanup();
});

test('enqueue, a repeat with the key, get, list, cancel, waitFor', async () => {
  const key = `http-${randomUUID()}`;
  const first = await operator.enqueue({ task: 'http.add', args: { a: 1, b: 2 }, idempotencyKey: key });
  expect(first).toMatchObject({ created: true, task: { state: 'scheduled', task: 'http.add' } });
  expect(await operator.enqueue({ task: 'http.add', args: { a: 1, b: 2 }, idempotencyKey: key })).toMatchObject({ id: first.id, created: false });
  expect(await operator.get(first.id)).toMatchObject({ id: first.id, state: 'scheduled' });
  expect(await operator.get(randomUUID())).toBeNull();
  expect((await operator.list({ task: 'http.add', limit: 10 })).items.map((t) => t.id)).toContain(first.id);
  expect(await operator.cancel(first.id)).toMatchObject({ state: 'cancelled' });
  expect(await operator.waitFor(first.id, { timeoutMs: 1000 })).toMatchObject({ state: 'cancelled' });
  await expect(operator.cancel(first.id)).rejects.toMatchObject({ code: 'INVALID_TRANSITION', status: 409, retryable: false });
});

test('refusals are typed: the code, the status and the failing paths', async () => {
  const bad = await operator.enqueue({ task: 'http.add', args: { a: 'one' } }).catch((e: unknown) => e);
  expect(bad).toBeInstanceOf(HttpApiError);
  expect(bad).toMatchObject({ code: 'INVALID_INPUT', status: 400, paths: expect.arrayContaining([{ path: 'args.a', message: 'must be number' }]) });
  await expect(operator.enqueue({ task: 'http.addd', args: {} })).rejects.toMatchObject({
    code: 'UNKNOWN_TASK_TYPE',
    message: expect.stringContaining('http.add'),
  });
  const key = `conflict-${randomUUID()}`;
  await operator.enqueue({ task: 'http.add', args: { a: 1, b: 1 }, idempotencyKey: key });
  await expect(operator.enqueue({ task: 'http.add', args: { a: 2, b: 2 }, idempotencyKey: key })).rejects.toMatchObject({
    code: 'IDEMPOTENCY_CONFLICT',
    status: 409,
  });
  await expect(new DeferrableHttpClient({ baseUrl, token: 'dfr_wrong' }).list()).rejects.toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
});

test('an unreachable API is a retryable error; a keyed enqueue retries within its bound, then gives up', async () => {
  const nowhere = new DeferrableHttpClient({ baseUrl: 'http://127.0.0.1:1', token: 'x', retryForMs: 300 });
  const started = Date.now();
  await expect(nowhere.enqueue({ task: 'http.add', args: { a: 1, b: 1 }, idempotencyKey: 'k' })).rejects.toMatchObject({
    code: 'INTERNAL',
    retryable: true,
    status: null,
  });
  // It tried more than once: at least the first backoff step passed.
  expect(Date.now() - started).toBeGreaterThanOrEqual(50);
});
