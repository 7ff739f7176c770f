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
