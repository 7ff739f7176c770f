import { createServer } from 'node:net';
import { AppProcess, createTestEnv, type TestEnv } from '@deferrable/testkit';
import { startSystem, waitFor, type E2E } from './helpers';

async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('health endpoints for container probes', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('health');
  });
  afterAll(async () => {
    await sys?.close();
  });

  test.each(['scheduler', 'triggerer', 'worker'] as const)('the %s serves /livez and /readyz', async (name) => {
    const app = sys.app(name);
    const line = await app.waitForLog((r) => typeof r.healthPort === 'number');
    const port = line.healthPort as number;
    expect(await get(port, '/livez')).toEqual({ status: 200, body: { live: true } });
    const ready = await get(port, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, detail: { database: true } });
    expect((await get(port, '/nope')).status).toBe(404);
  });

  test('readiness fails when the database is unreachable', async () => {
    const app = sys.app('worker');
    const port = (await app.waitForLog((r) => typeof r.healthPort === 'number')).healthPort as number;
    // Forbid new connections to this test's database and terminate the existing ones.
    const { Client } = await import('pg');
    const admin = new Client({ connectionString: sys.env.databaseUrl.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${sys.env.databaseName}" WITH ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [sys.env.databaseName]);
      const ready = await get(port, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ ready: false, detail: { database: false } });
      expect((await get(port, '/livez')).status).toBe(200);
    } finally {
      await admin.query(`ALTER DATABASE "${sys.env.databaseName}" WITH ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    // Ready again once the database is back.
    await waitFor(async () => (await get(port, '/readyz')).status === 200, 10_000, 'ready again');
  });
});

describe('several apps of one kind on one host', () => {
  let env: TestEnv;
  const apps: AppProcess[] = [];
  beforeAll(async () => {
    env = await createTestEnv('healthports');
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await env?.cleanup();
  });

  test('two workers with DEFERRABLE_HEALTH_PORT unset both start, on different health ports', async () => {
    // Empty counts as unset: each takes the default port, or a free one when the other holds it.
    const [a, b] = [0, 1].map(() => new AppProcess('worker', env.appEnv({ DEFERRABLE_HEALTH_PORT: '' })));
    apps.push(a!, b!);
    await Promise.all([a!.started(), b!.started()]);
    const ports = await Promise.all([a!, b!].map(async (w) => (await w.waitForLog((r) => typeof r.healthPort === 'number')).healthPort as number));
    expect(ports[0]).not.toBe(ports[1]);
    for (const port of ports) expect((await get(port, '/livez')).status).toBe(200);
    const { rows } = await env.db.pool.query("SELECT count(*)::int AS n FROM job WHERE job_type = 'worker' AND state = 'running'");
    expect(rows[0].n).toBe(2);
  });

  test('a health port set explicitly and in use: exit 1 with a clear message, and no job row', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const before = (await env.db.pool.query('SELECT id FROM job ORDER BY id')).rows.map((r: { id: string }) => r.id);
      const w = new AppProcess('worker', env.appEnv({ DEFERRABLE_HEALTH_PORT: String(port) }));
      apps.push(w);
      expect(await w.exited).toEqual({ code: 1, signal: null });
      const fatal = w.logs.find((r) => r.level === 60);
      expect(fatal?.msg).toContain(`DEFERRABLE_HEALTH_PORT: port ${port} on 127.0.0.1 is in use`);
      const after = (await env.db.pool.query('SELECT id FROM job ORDER BY id')).rows.map((r: { id: string }) => r.id);
      expect(after).toEqual(before);
    } finally {
      busy.close();
    }
  });
});
