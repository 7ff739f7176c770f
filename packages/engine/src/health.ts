import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HealthChecks {
  /** The process can serve: answering at all shows its event loop turns. */
  live(): boolean;
  /** The process does its job: started, database reachable, job row heartbeating. */
  ready(): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
  /** Load and memory figures for operators and benchmarks. */
  status?(): Record<string, unknown>;
}

export interface HealthServer {
  port: number;
  /** The address it is bound to. */
  address: string;
  close(): Promise<void>;
}

/**
 * GET /livez and /readyz for container probes (200 or 503, JSON body), and /status. Port 0 picks
 * a free port (reported in the startup log). Bound to `host`: loopback unless the operator opens
 * it (DEFERRABLE_HEALTH_HOST). Node's http module is enough for three routes.
 */
export async function startHealthServer(port: number, checks: HealthChecks, host = '127.0.0.1'): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: 'method not allowed' });
    const path = (req.url ?? '').split('?')[0];
    if (path === '/livez') return checks.live() ? send(200, { live: true }) : send(503, { live: false });
    if (path === '/readyz') {
      checks.ready().then(
        (r) => send(r.ready ? 200 : 503, r),
        (err: unknown) => send(503, { ready: false, detail: { error: err instanceof Error ? err.message : String(err) } }),
      );
      return;
    }
    if (path === '/status') {
      const mem = process.memoryUsage();
      return send(200, { pid: process.pid, heapUsed: mem.heapUsed, rss: mem.rss, ...checks.status?.() });
    }
    send(404, { error: 'not found', routes: ['/livez', '/readyz', '/status'] });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    address: (server.address() as AddressInfo).address,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
