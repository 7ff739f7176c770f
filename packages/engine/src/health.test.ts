import { startHealthServer, type HealthChecks } from './health';

const checks: HealthChecks = { live: () => true, ready: async () => ({ ready: true, detail: {} }), status: () => ({ running: 3 }) };

describe('health server', () => {
  test('binds to loopback unless told otherwise', async () => {
    const loopback = await startHealthServer(0, checks);
    const all = await startHealthServer(0, checks, '0.0.0.0');
    try {
      expect(loopback.address).toBe('127.0.0.1');
      expect(all.address).toBe('0.0.0.0');
      expect((await fetch(`http://127.0.0.1:${loopback.port}/livez`)).status).toBe(200);
    } finally {
      await Promise.all([loopback.close(), all.close()]);
    }
  });

  test('/status reports memory and the app figures, and collects no garbage whatever the query says', async () => {
    const g = globalThis as { gc?: () => void };
    const saved = g.gc;
    let collections = 0;
    g.gc = () => {
      collections++;
    };
    const server = await startHealthServer(0, checks);
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/status?gc=1`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ pid: process.pid, heapUsed: expect.any(Number), rss: expect.any(Number), running: 3 });
      expect(collections).toBe(0);
    } finally {
      g.gc = saved;
      await server.close();
    }
  });
});
