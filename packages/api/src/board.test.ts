import { randomUUID } from 'node:crypto';
import { TaskCatalog } from '@deferrable/catalog';
import { createApiToken, revokeApiToken, type ApiRole } from '@deferrable/db';
import { silentLogger } from '@deferrable/logging';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { TokenVerifier } from './auth';
import { buildApi } from './server';

// Browser sessions (login page, signed cookie, origin check) and Bull Board behind them, against
// the real PostgreSQL and Redis.
let env: TestEnv;
let app: Awaited<ReturnType<typeof buildApi>>;
const HOST = 'deferrable.test';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

beforeAll(async () => {
  env = await createTestEnv('board');
  app = await buildApi(
    { db: env.db, catalog: new TaskCatalog(env.db.pool), tokens: new TokenVerifier(env.db.pool, 0), healthThresholdMs: 10_000 },
    {
      logger: silentLogger(),
      rateLimitPerMinute: 10_000,
      bodyLimit: 64 * 1024,
      sessionSecret: 's'.repeat(40),
      sessionTtlMs: 3_600_000,
      secureCookies: false,
      board: { redisUrl: env.redisUrl, prefix: env.prefix },
    },
  );
});
afterAll(async () => {
  await app?.close();
  await env?.cleanup();
});

async function login(role: ApiRole): Promise<{ cookie: string; tokenId: string }> {
  const { token, secret } = await createApiToken(env.db.pool, { name: `person-${role}`, role, expiresAt: null });
  const res = await app.inject({
    method: 'POST',
    url: '/login',
    headers: { host: HOST, ...FORM },
    payload: `token=${encodeURIComponent(secret)}&next=%2Fqueues`,
  });
  expect(res.statusCode).toBe(303);
  expect(res.headers.location).toBe('/queues');
  const setCookie = String(res.headers['set-cookie']);
  expect(setCookie).toMatch(/HttpOnly/);
  expect(setCookie).toMatch(/SameSite=Strict/);
  expect(setCookie).not.toContain(secret);
  return { cookie: setCookie.split(';')[0]!, tokenId: token.id };
}

const pause = (cookie: string, origin?: string) =>
  app.inject({ method: 'PUT', url: '/queues/api/queues/tasks.default/pause', headers: { host: HOST, cookie, ...(origin ? { origin } : {}) } });

test('a browser without a session is sent to the login page; a program gets 401', async () => {
  const page = await app.inject({ method: 'GET', url: '/queues', headers: { accept: 'text/html' } });
  expect(page.statusCode).toBe(302);
  expect(page.headers.location).toBe('/login?next=%2Fqueues');
  const login = await app.inject({ method: 'GET', url: '/login?next=%2Fqueues' });
  expect(login.body).toContain('name="token"');
  expect((await app.inject({ method: 'GET', url: '/queues/api/queues' })).statusCode).toBe(401);
});

test('a bad token at the login page: 401 with the reason, no cookie; an outside next is not followed', async () => {
  const res = await app.inject({ method: 'POST', url: '/login', payload: 'token=dfr_nope&next=%2F%2Fevil.example', headers: FORM });
  expect(res.statusCode).toBe(401);
  expect(res.body).toContain('unknown API token');
  expect(res.headers['set-cookie']).toBeUndefined();
  const { secret } = await createApiToken(env.db.pool, { name: 'redirect', role: 'viewer', expiresAt: null });
  const ok = await app.inject({ method: 'POST', url: '/login', headers: FORM, payload: `token=${secret}&next=%2F%2Fevil.example` });
  expect(ok.headers.location).toBe('/queues');
});

test('a viewer sees Bull Board with every Deferrable queue, and its actions are refused with 403', async () => {
  const { cookie } = await login('viewer');
  const board = await app.inject({ method: 'GET', url: '/queues', headers: { cookie, accept: 'text/html' } });
  expect(board.statusCode).toBe(200);
  expect(board.body).toContain('Deferrable');
  const queues = await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { cookie } });
  expect(queues.statusCode).toBe(200);
  expect(
    queues
      .json<{ queues: { name: string }[] }>()
      .queues.map((q) => q.name)
      .toSorted(),
  ).toEqual(['task-requests', 'tasks.default', 'trigger-events']);
  const refused = await pause(cookie, `http://${HOST}`);
  expect(refused.statusCode).toBe(403);
  expect(refused.json().error.code).toBe('FORBIDDEN');
});

test("an operator may act from the board's own pages; the same request from another site is refused", async () => {
  const { cookie } = await login('operator');
  expect((await pause(cookie, 'https://evil.example')).statusCode).toBe(403);
  expect((await pause(cookie)).statusCode).toBe(403);
  const ok = await pause(cookie, `http://${HOST}`);
  expect(ok.statusCode).toBe(200);
  const listed = await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { cookie } });
  const queues = listed.json<{ queues: { name: string; isPaused: boolean }[] }>();
  expect(queues.queues.find((q) => q.name === 'tasks.default')?.isPaused).toBe(true);
  await app.inject({ method: 'PUT', url: '/queues/api/queues/tasks.default/resume', headers: { host: HOST, cookie, origin: `http://${HOST}` } });
});

test('revoking the token ends its sessions; a forged or tampered cookie is refused; logout clears the cookie', async () => {
  const { cookie, tokenId } = await login('viewer');
  const [name, value] = cookie.split('=') as [string, string];
  const tampered = `${name}=${value.replace(/^[0-9a-f]/, (c) => (c === 'a' ? 'b' : 'a'))}`;
  expect((await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { cookie: tampered } })).statusCode).toBe(401);
  expect((await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { cookie: `${name}=${randomUUID()}.9999999999999` } })).statusCode).toBe(401);
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } });
  expect(out.statusCode).toBe(303);
  expect(String(out.headers['set-cookie'])).toMatch(/deferrable_session=;/);
  await revokeApiToken(env.db.pool, tokenId);
  expect((await app.inject({ method: 'GET', url: '/queues/api/queues', headers: { cookie } })).statusCode).toBe(401);
});
