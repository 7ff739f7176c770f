/**
 * Preloaded into an app the benchmark starts (`node --expose-gc --require gc-preload.js ...`):
 * serves GET /gc on a loopback port of its own, which collects garbage and answers the heap
 * figures, so heap per trigger is net of garbage. Bench only: product code has no such hook.
 * The port is announced as one JSON line on stdout, read like the app's own log lines.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const gc = (globalThis as { gc?: () => void }).gc;
const server = createServer((req, res) => {
  if (req.url !== '/gc' || !gc) {
    res.writeHead(404).end();
    return;
  }
  gc();
  const mem = process.memoryUsage();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ heapUsed: mem.heapUsed, rss: mem.rss }));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ level: 30, msg: 'bench gc hook', benchGcPort: (server.address() as AddressInfo).port })}\n`);
});
// Never what keeps the app alive.
server.unref();
