import { randomUUID } from 'node:crypto';
import { publishTaskTypes, TaskCatalog } from '@deferrable/catalog';
import { createApiToken, hashToken, revokeApiToken, registerJob, type ApiRole } from '@deferrable/db';
import { defineTask } from '@deferrable/domain';
import { silentLogger } from '@deferrable/logging';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { z } from 'zod';
import { TokenVerifier } from './auth';
import { buildApi } from './server';

const report = defineTask({
  name: 'api.report',
  args: z.object({ seconds: z.number().min(0).max(60), label: z.string().max(10).default('x') }),
  retry: { maxTries: 3 },
  executionTimeoutMs: 60_000,
  execute() {},
});

let env: TestEnv;
let app: Awaited<ReturnType<typeof buildApi>>;
const tokens: Record<ApiRole | 'revoked' | 'expired', string> = {} as never;

async function token(role: ApiRole, over: { revoked?: boolean; expired?: boolean } = {}): Promise<string> {
  const { token: row, secret } = await createApiToken(env.db.pool, { name: `t-${role}`, role, expiresAt: over.expired ? new Date(Date.now() - 1000) : null });
  if (over.revoked) await revokeApiToken(env.db.pool, row.id);
  return secret;
}

const auth = (secret: string) => ({ authorization: `Bearer ${secret}` });
const taskCount = async () => (await env.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM task_instance')).rows[0]!.n;

beforeAll(async () => {
  env = await createTestEnv('api');
  const worker = randomUUID();
  await registerJob(env.db.pool, { id: worker, jobType: 'worker', hostname: 'h', pid: 1, capacity: 4, queues: ['default'] });
  await publishTaskTypes(env.db.pool, worker, [report], { aliveWithinMs: 60_000 });
  tokens.viewer = await token('viewer');
  tokens.operator = await token('operator');
  tokens.admin = await token('admin');
  tokens.revoked = await token('operator', { revoked: true });
  tokens.expired = await token('operator', { expired: true });
  app = await buildApi(
    { db: env.db, catalog: new TaskCatalog(env.db.pool), tokens: new TokenVerifier(env.db.pool, 0), healthThresholdMs: 10_000 },
    { logger: silentLogger(), rateLimitPerMinute: 10_000, bodyLimit: 64 * 1024, sessionSecret: 'x'.repeat(32), sessionTtlMs: 3_600_000, secureCookies: false },
  );
});
afterAll(async () => {
  await app?.close();
  await env?.cleanup();
});

describe('POST /api/v1/tasks', () => {
  test("201 with the task and the definition's defaults; 200 with the same task when the same request is repeated; 409 for another request with the key", async () => {
    const body = { task: 'api.report', args: { seconds: 1 }, idempotencyKey: `k-${randomUUID()}` };
    const first = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: body });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ task: 'api.report', state: 'scheduled', maxTries: 3, queue: 'default', idempotencyKey: body.idempotencyKey });
    const again = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: body });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(first.json().id);
    const other = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { ...body, args: { seconds: 2 } } });
    expect(other.statusCode).toBe(409);
    expect(other.json().error).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', retryable: false });
  });

  test('the Idempotency-Key header works as the body field does; both, differing, is a 400', async () => {
    const key = `h-${randomUUID()}`;
    const payload = { task: 'api.report', args: { seconds: 3 } };
    const first = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: { ...auth(tokens.operator), 'idempotency-key': key }, payload });
    expect(first.statusCode).toBe(201);
    const viaBody = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { ...payload, idempotencyKey: key } });
    expect(viaBody.statusCode).toBe(200);
    expect(viaBody.json().id).toBe(first.json().id);
    const both = await app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: { ...auth(tokens.operator), 'idempotency-key': 'x' },
      payload: { ...payload, idempotencyKey: 'y' },
    });
    expect(both.statusCode).toBe(400);
    expect(both.json().error.paths).toEqual([{ path: 'headers.idempotency-key', message: expect.any(String) }]);
  });

  test.each([
    ['malformed JSON', { 'content-type': 'application/json' }, '{"task": ', 400, 'INVALID_INPUT'],
    ['a wrong content type', { 'content-type': 'text/plain' }, 'task=api.report', 415, 'INVALID_INPUT'],
    [
      'a body over the limit',
      { 'content-type': 'application/json' },
      JSON.stringify({ task: 'api.report', args: { seconds: 1, label: 'x'.repeat(70_000) } }),
      413,
      'PAYLOAD_TOO_LARGE',
    ],
    ['an unknown task', { 'content-type': 'application/json' }, JSON.stringify({ task: 'api.reprot', args: {} }), 400, 'UNKNOWN_TASK_TYPE'],
    [
      'arguments failing the schema',
      { 'content-type': 'application/json' },
      JSON.stringify({ task: 'api.report', args: { seconds: 'soon' } }),
      400,
      'INVALID_INPUT',
    ],
    [
      'an unknown field',
      { 'content-type': 'application/json' },
      JSON.stringify({ task: 'api.report', args: { seconds: 1 }, colour: 'red' }),
      400,
      'INVALID_INPUT',
    ],
  ])('%s: refused, nothing written', async (_label, headers, payload, status, code) => {
    const before = await taskCount();
    const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: { ...auth(tokens.operator), ...headers }, payload });
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toMatchObject({ code, message: expect.any(String) });
    expect(await taskCount()).toBe(before);
  });

  test('a 400 names the failing paths; an unknown task names close registered ones', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: auth(tokens.operator),
      payload: { task: 'api.report', args: { seconds: 99 } },
    });
    expect(bad.json().error.paths).toEqual([expect.objectContaining({ path: expect.stringContaining('seconds') })]);
    const typo = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { task: 'api.reprot' } });
    expect(typo.json().error.message).toContain('api.report');
  });
});

describe('authentication and roles', () => {
  type Who = keyof typeof tokens | { authorization?: string };
  const cases: [string, Who, number, string][] = [
    ['no token', {}, 401, 'UNAUTHENTICATED'],
    ['a malformed header', { authorization: 'Token abc' }, 401, 'UNAUTHENTICATED'],
    ['an unknown token', { authorization: 'Bearer dfr_nope' }, 401, 'UNAUTHENTICATED'],
    ['a revoked token', 'revoked', 401, 'UNAUTHENTICATED'],
    ['an expired token', 'expired', 401, 'UNAUTHENTICATED'],
    ['a viewer', 'viewer', 403, 'FORBIDDEN'],
  ];
  test.each(cases)('enqueue with %s: refused, nothing written', async (_label, who, status, code) => {
    const headers = typeof who === 'string' ? auth(tokens[who]) : who;
    const before = await taskCount();
    const res = await app.inject({ method: 'POST', url: '/api/v1/tasks', headers, payload: { task: 'api.report', args: { seconds: 1 } } });
    expect(res.statusCode).toBe(status);
    expect(res.json().error.code).toBe(code);
    expect(await taskCount()).toBe(before);
  });

  test('a viewer may read but not cancel', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: auth(tokens.operator),
      payload: { task: 'api.report', args: { seconds: 1 } },
    });
    const id = created.json().id as string;
    expect((await app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(tokens.viewer) })).statusCode).toBe(200);
    const cancel = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: auth(tokens.viewer) });
    expect(cancel.statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(tokens.viewer) })).json().state).toBe('scheduled');
  });

  test('a token is marked used', async () => {
    const secret = await token('viewer');
    await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(secret) });
    const { rows } = await env.db.pool.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_token WHERE token_hash = $1', [hashToken(secret)]);
    expect(rows[0]?.last_used_at).toBeInstanceOf(Date);
  });
});

describe('GET and cancel', () => {
  test('GET /tasks/:id: the task with its timeline; 404 for an unknown id; 400 for an id that is not a UUID', async () => {
    const { id } = (
      await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { task: 'api.report', args: { seconds: 1 } } })
    ).json();
    const got = await app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(tokens.viewer) });
    expect(got.json()).toMatchObject({
      id,
      state: 'scheduled',
      trigger: null,
      timeline: [{ from: null, to: 'scheduled', tryNumber: 1, actor: 'api:t-operator' }],
    });
    const missing = await app.inject({ method: 'GET', url: `/api/v1/tasks/${randomUUID()}`, headers: auth(tokens.viewer) });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('TASK_NOT_FOUND');
    const notUuid = await app.inject({ method: 'GET', url: '/api/v1/tasks/not-a-uuid', headers: auth(tokens.viewer) });
    expect(notUuid.statusCode).toBe(400);
    expect(notUuid.json().error).toMatchObject({ code: 'INVALID_INPUT', paths: [expect.objectContaining({ path: 'params.id' })] });
  });

  test('cancel: 200 with the cancelled task; again: 409 naming the state; unknown id: 404', async () => {
    const { id } = (
      await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { task: 'api.report', args: { seconds: 1 } } })
    ).json();
    const first = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: auth(tokens.operator) });
    expect(first.statusCode).toBe(200);
    expect(first.json().state).toBe('cancelled');
    const again = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: auth(tokens.operator) });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({ code: 'INVALID_TRANSITION', message: expect.stringContaining('cancelled') });
    expect((await app.inject({ method: 'POST', url: `/api/v1/tasks/${randomUUID()}/cancel`, headers: auth(tokens.operator) })).statusCode).toBe(404);
  });
});

describe('GET /api/v1/tasks (keyset pages)', () => {
  test('pages follow each other without gaps or repeats, newest first, with filters', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/tasks',
        headers: auth(tokens.operator),
        payload: { task: 'api.report', args: { seconds: i }, queue: undefined },
      });
      ids.push(res.json().id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/v1/tasks?task=api.report&state=scheduled&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await app.inject({ method: 'GET', url, headers: auth(tokens.viewer) });
      expect(page.statusCode).toBe(200);
      const body: { items: { id: string; state: string }[]; nextCursor: string | null } = page.json();
      expect(body.items.length).toBeLessThanOrEqual(3);
      for (const item of body.items) expect(item.state).toBe('scheduled');
      seen.push(...body.items.map((i) => i.id));
      cursor = body.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    // Newest first: the seven just enqueued lead, in reverse order of creation.
    expect(seen.slice(0, 7)).toEqual([...ids].reverse());
  });

  test('a bad cursor, an unknown state or an unknown parameter is a 400', async () => {
    for (const q of ['cursor=bm90LWEtY3Vyc29y', 'state=sleeping', 'offset=10', 'limit=0']) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/tasks?${q}`, headers: auth(tokens.viewer) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('INVALID_INPUT');
    }
  });
});

describe('catalog, triggers, jobs, health, docs', () => {
  test('GET /task-types gives the catalog with argument schemas', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/task-types', headers: auth(tokens.viewer) });
    expect(res.json().items).toEqual([expect.objectContaining({ name: 'api.report', maxTries: 3, argsSchema: expect.objectContaining({ type: 'object' }) })]);
  });

  test('GET /triggers lists a waiting trigger with its task, never its kwargs', async () => {
    const triggerId = randomUUID();
    const taskId = randomUUID();
    await env.db.pool.query("INSERT INTO trigger (id, classpath, kwargs) VALUES ($1, 'datetime', 'secret-token')", [triggerId]);
    await env.db.pool.query(
      "INSERT INTO task_instance (id, task_name, state, trigger_id, trigger_timeout) VALUES ($1, 'api.report', 'deferred', $2, now() + interval '1 hour')",
      [taskId, triggerId],
    );
    const res = await app.inject({ method: 'GET', url: '/api/v1/triggers?state=waiting', headers: auth(tokens.viewer) });
    expect(res.statusCode).toBe(200);
    expect(res.json().items).toContainEqual(
      expect.objectContaining({ id: triggerId, type: 'datetime', state: 'waiting', taskInstanceId: taskId, taskName: 'api.report', triggererId: null }),
    );
    expect(res.body).not.toContain('secret-token');
    expect((await app.inject({ method: 'GET', url: '/api/v1/triggers?state=running', headers: auth(tokens.viewer) })).json().items).toEqual([]);
  });

  test('GET /jobs shows the worker with its heartbeat age and capacity', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/jobs?type=worker', headers: auth(tokens.viewer) });
    expect(res.json().items).toEqual([expect.objectContaining({ type: 'worker', capacity: 4, healthy: true, heartbeatAgeMs: expect.any(Number) })]);
  });

  test('GET /health needs no token, shows statuses only, and warns when triggers wait with no triggerer', async () => {
    for (const url of ['/health', '/api/v1/health']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.components.worker).toMatchObject({ status: 'healthy', instances: [{ status: 'healthy', latestHeartbeat: expect.any(String) }] });
      expect(body.components.triggerer.status).toBeNull();
      expect(body.warnings).toContain('triggers are waiting and no healthy triggerer is alive: start a triggerer');
      expect(body.status).toBe('unhealthy');
      expect(res.body).not.toMatch(/"h"|hostname|pid/);
    }
  });

  test('the OpenAPI document lists the routes; the docs page is served; an unknown route is a 404 in the error shape', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/tasks',
        '/api/v1/tasks/{id}',
        '/api/v1/tasks/{id}/cancel',
        '/api/v1/triggers',
        '/api/v1/jobs',
        '/api/v1/health',
        '/api/v1/task-types',
      ]),
    );
    const docs = await app.inject({ method: 'GET', url: '/api/v1/docs' });
    expect([200, 302]).toContain(docs.statusCode);
    const missing = await app.inject({ method: 'GET', url: '/api/v1/nope', headers: auth(tokens.viewer) });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('NOT_FOUND');
  });
});

describe('POST /tasks/:id/retry', () => {
  test('a failed task: a new task with its task, arguments and options (201), the same one again (200); the failed one stays failed', async () => {
    const { id } = (
      await app.inject({
        method: 'POST',
        url: '/api/v1/tasks',
        headers: auth(tokens.operator),
        payload: { task: 'api.report', args: { seconds: 7 }, priority: 3 },
      })
    ).json();
    await env.db.pool.query(`UPDATE task_instance SET state = 'failed', ended_at = now(), error = '{"code":"TASK_FAILED"}' WHERE id = $1`, [id]);
    const first = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/retry`, headers: auth(tokens.operator) });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ task: 'api.report', state: 'scheduled', priority: 3, maxTries: 3, idempotencyKey: `retry:${id}` });
    expect(first.json().id).not.toBe(id);
    const again = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/retry`, headers: auth(tokens.operator) });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(first.json().id);
    const row = (await env.db.pool.query('SELECT args, state FROM task_instance WHERE id = $1', [first.json().id])).rows[0];
    // The arguments as the failed task was given them (defaults apply on the worker, as for any enqueue).
    expect(row).toEqual({ args: { seconds: 7 }, state: 'scheduled' });
    expect((await app.inject({ method: 'GET', url: `/api/v1/tasks/${id}`, headers: auth(tokens.viewer) })).json().state).toBe('failed');
  });

  test('a task that has not failed: 409; a viewer: 403; an unknown id: 404', async () => {
    const { id } = (
      await app.inject({ method: 'POST', url: '/api/v1/tasks', headers: auth(tokens.operator), payload: { task: 'api.report', args: { seconds: 1 } } })
    ).json();
    const notFailed = await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/retry`, headers: auth(tokens.operator) });
    expect(notFailed.statusCode).toBe(409);
    expect(notFailed.json().error).toMatchObject({ code: 'INVALID_TRANSITION', message: expect.stringContaining('scheduled') });
    expect((await app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/retry`, headers: auth(tokens.viewer) })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: `/api/v1/tasks/${randomUUID()}/retry`, headers: auth(tokens.operator) })).statusCode).toBe(404);
  });
});

describe('/tokens (admin)', () => {
  test('an admin creates a token whose secret works at once, lists tokens without secrets, and revokes it', async () => {
    const created = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth(tokens.admin), payload: { name: 'reporting', role: 'viewer' } });
    expect(created.statusCode).toBe(201);
    const { id, secret } = created.json<{ id: string; secret: string }>();
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(secret) })).statusCode).toBe(200);
    const list = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: auth(tokens.admin) });
    expect(list.json().items).toContainEqual(expect.objectContaining({ id, name: 'reporting', role: 'viewer', revokedAt: null }));
    expect(list.body).not.toContain(secret);
    expect((await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/revoke`, headers: auth(tokens.admin) })).statusCode).toBe(204);
    // This test's verifier caches nothing: the revoked secret is refused at once.
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(secret) })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/revoke`, headers: auth(tokens.admin) })).json().error.code).toBe('NOT_FOUND');
  });

  test('an operator may not manage tokens; a bad body is a 400', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/tokens'],
      ['POST', `/api/v1/tokens/${randomUUID()}/revoke`],
    ] as const) {
      const res = await app.inject({ method, url, headers: auth(tokens.operator), payload: method === 'POST' ? { name: 'x', role: 'admin' } : undefined });
      expect(res.statusCode).toBe(403);
    }
    const bad = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth(tokens.admin), payload: { name: 'has space', role: 'root' } });
    expect(bad.statusCode).toBe(400);
    expect(
      bad
        .json()
        .error.paths.map((p: { path: string }) => p.path)
        .sort(),
    ).toEqual(['body.name', 'body.role']);
  });
});

describe('rate limit', () => {
  test('past the limit per token: 429 in the error shape (retryable), other tokens unaffected', async () => {
    const limited = await buildApi(
      { db: env.db, catalog: new TaskCatalog(env.db.pool), tokens: new TokenVerifier(env.db.pool, 0), healthThresholdMs: 10_000 },
      { logger: silentLogger(), rateLimitPerMinute: 3, bodyLimit: 64 * 1024, sessionSecret: 'x'.repeat(32), sessionTtlMs: 3_600_000, secureCookies: false },
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await limited.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(tokens.viewer) })).statusCode);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const refused = await limited.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(tokens.viewer) });
      expect(refused.json().error).toMatchObject({ code: 'RATE_LIMITED', retryable: true, message: expect.stringContaining('3 requests per minute') });
      expect((await limited.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(tokens.admin) })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
