import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DeferrableHttpClient } from '@deferrable/sdk';
import { AppProcess } from '@deferrable/testkit';
import { START_TIMEOUT_MS, startSystem, type E2E } from './helpers';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../packages/cli/dist/main.js');

let sys: E2E;
let api: AppProcess;
let base: string;
beforeAll(async () => {
  sys = await startSystem('e2eapi');
  api = new AppProcess('api', sys.env.appEnv({ DEFERRABLE_API_PORT: '0' }));
  sys.apps.push(api);
  await api.started(START_TIMEOUT_MS);
  base = String(api.logs.find((r) => r.msg === 'api started')!.address);
});
afterAll(() => sys?.close());

async function token(role: string): Promise<string> {
  const { stdout } = await run(process.execPath, [
    CLI,
    'tokens',
    'create',
    '--role',
    role,
    '--name',
    `e2e-${role}`,
    '--json',
    '--database-url',
    sys.env.databaseUrl,
  ]);
  return (JSON.parse(stdout) as { secret: string }).secret;
}

test('a service with only an API token enqueues a task that defers and resumes, and follows it to success', async () => {
  const secret = await token('operator');
  const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
  const res = await fetch(`${base}/api/v1/tasks`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ task: 'test.defer-once', args: { delayMs: 300, tag: 'http' } }),
  });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  // Waits on the task's end state (the SDK polls), then reads its timeline.
  await new DeferrableHttpClient({ baseUrl: base, token: secret }).waitFor(id, { timeoutMs: 30_000 });
  const task = (await (await fetch(`${base}/api/v1/tasks/${id}`, { headers })).json()) as { state: string; result: unknown; timeline: { to: string }[] };
  expect(task).toMatchObject({ state: 'success', result: { kwargs: { tag: 'http' } } });
  expect(task.timeline.map((t) => t.to)).toEqual(['scheduled', 'queued', 'running', 'deferred', 'scheduled', 'queued', 'running', 'success']);
});

test('a service with only an API token enqueues 1,000 tasks that defer and resume, waits for them through the HTTP SDK, and sees every one succeed', async () => {
  const client = new DeferrableHttpClient({ baseUrl: base, token: await token('operator') });
  const ids: string[] = [];
  for (let i = 0; i < 1000; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        client.enqueue({ task: 'test.defer-once', args: { delayMs: 200, tag: `n${i + j}` }, idempotencyKey: `bulk-${i + j}` }),
      ),
    );
    ids.push(...batch.map((b) => b.id));
  }
  expect(new Set(ids).size).toBe(1000);
  const done = await Promise.all(ids.map((id) => client.waitFor(id, { timeoutMs: 120_000, pollMs: 1000 })));
  expect(done.filter((t) => t.state === 'success')).toHaveLength(1000);
  expect(new Set(done.map((t) => (t.result as { kwargs: { tag: string } }).kwargs.tag)).size).toBe(1000);
}, 180_000);

test('health is public and shows every component healthy; other routes need a token', async () => {
  const health = (await (await fetch(`${base}/health`)).json()) as { status: string; components: Record<string, { status: string | null }> };
  expect(health.components).toMatchObject({
    database: { status: 'healthy' },
    scheduler: { status: 'healthy' },
    triggerer: { status: 'healthy' },
    worker: { status: 'healthy' },
  });
  expect(health.status).toBe('healthy');
  expect((await fetch(`${base}/api/v1/tasks`)).status).toBe(401);
  const docs = await fetch(`${base}/api/v1/docs/`);
  expect(docs.status).toBe(200);
  expect(await docs.text()).toContain('swagger');
});
