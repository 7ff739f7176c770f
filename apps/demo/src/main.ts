import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createApiToken, createDb, ensureDatabase, migrate, taskTypeNames } from '@deferrable/db';
import { DeferrableClient } from '@deferrable/sdk';
import { formatLine } from './format';

/**
 * `npm start`: migrates, starts scheduler, triggerer and worker as separate processes in this
 * terminal with readable logs, and enqueues the examples: tasks defer, their worker slots are
 * freed, and they resume in their callbacks. With `--once` it stops after the examples finish.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/deferrable';
const once = process.argv.includes('--once');

function startApp(name: string, env: Record<string, string>, pkg = name, onLine?: (line: string) => void): ChildProcess {
  const entry = require.resolve(`@deferrable/${pkg}/dist/main.js`);
  const child = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      console.log(formatLine(name, line));
      onLine?.(line);
    });
  }
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.log(`${name} exited unexpectedly (code ${code}, signal ${signal}); stopping the demo`);
      void shutdown(1);
    }
  });
  return child;
}

let stopping = false;
const children: ChildProcess[] = [];

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
  process.exit(code);
}

/** The API's usual port when it is free, else any free port (another deployment may hold it). */
async function apiPort(): Promise<string> {
  if (process.env.DEFERRABLE_API_PORT) return process.env.DEFERRABLE_API_PORT;
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer()
      .once('error', () => resolve(false))
      .listen(8780, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
  return free ? '8780' : '0';
}

/** Waits until the worker has published the examples' task types: enqueue checks them. */
async function catalogHas(names: string[], timeoutMs = 60_000): Promise<void> {
  const db = createDb({ url: DATABASE_URL, poolMax: 1, applicationName: 'deferrable-demo' });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const registered = new Set(await taskTypeNames(db.pool));
      if (names.every((n) => registered.has(n))) return;
      if (Date.now() > deadline) throw new Error(`the worker did not register ${names.join(', ')} within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  await ensureDatabase(DATABASE_URL);
  const m = await migrate(DATABASE_URL);
  console.log(`database ready (${m.applied.length} migrations applied, ${m.alreadyApplied.length} already applied)`);

  const env = {
    DATABASE_URL,
    DEFERRABLE_MODULES: '@deferrable/examples',
    // Two slots: five waiting tasks would block them; deferred tasks do not.
    DEFERRABLE_WORKER_SLOTS: '2',
    DEFERRABLE_PREFIX: process.env.DEFERRABLE_PREFIX ?? '{deferrable}',
    // The demo runs on the development key (kwargs it wrote in earlier runs stay readable).
    NODE_ENV: process.env.NODE_ENV ?? 'development',
  };
  let apiAddress: string | null = null;
  const api = startApp('api', { ...env, DEFERRABLE_API_PORT: await apiPort() }, 'api-app', (line) => {
    if (apiAddress === null && line.includes('"api started"')) apiAddress = String((JSON.parse(line) as { address?: string }).address ?? '');
  });
  children.push(startApp('scheduler', env), startApp('triggerer', env), startApp('worker', env), api);
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  await catalogHas(['examples.wait-and-report', 'examples.wait-for-file']);
  const client = new DeferrableClient({ databaseUrl: DATABASE_URL, actor: 'demo' });
  const sensorFile = path.join(mkdtempSync(path.join(tmpdir(), 'deferrable-demo-')), 'ready.flag');
  const ids: { id: string; what: string }[] = [];
  for (let i = 1; i <= 5; i++) {
    const { id } = await client.enqueue({ task: 'examples.wait-and-report', args: { seconds: 2 + (i % 3) } });
    ids.push({ id, what: `wait-and-report ${2 + (i % 3)} s` });
  }
  const sensor = await client.enqueue({ task: 'examples.wait-for-file', args: { path: sensorFile, pollMs: 200, timeoutSeconds: 30 } });
  ids.push({ id: sensor.id, what: 'wait-for-file' });
  console.log(`enqueued ${ids.length} example tasks on a worker with 2 slots; the file sensor's file appears in 3 s`);
  if (env.NODE_ENV === 'development') await announceConsole(() => apiAddress);
  setTimeout(() => writeFileSync(sensorFile, 'ready\n'), 3000).unref();

  const started = Date.now();
  const results = await Promise.all(ids.map(async (t) => ({ ...t, view: await client.waitFor(t.id, { timeoutMs: 60_000 }) })));
  const elapsed = ((Date.now() - started) / 1000).toFixed(1);
  console.log('\nexample            task id   state    tries  result');
  for (const r of results) {
    console.log(
      `${r.what.padEnd(18)} ${r.id.slice(0, 8)}  ${r.view.state.padEnd(8)} ${String(r.view.tryNumber).padEnd(6)} ${JSON.stringify(r.view.result).slice(0, 90)}`,
    );
  }
  console.log(`\nall ${results.length} examples finished in ${elapsed} s (blocking would have needed ≥ ${Math.ceil((5 * 3) / 2)} s with 2 slots)`);
  await client.close();
  const ok = results.every((r) => r.view.state === 'success');
  if (once || !ok) return shutdown(ok ? 0 : 1);
  console.log('the system keeps running: enqueue more with the SDK, or press Ctrl-C to stop');
}

/** Development only: the console's address and a new admin token to log in with (shown once). */
async function announceConsole(address: () => string | null): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!address() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const db = createDb({ url: DATABASE_URL, poolMax: 1, applicationName: 'deferrable-demo' });
  try {
    const { secret } = await createApiToken(db.pool, { name: 'demo-admin', role: 'admin', expiresAt: new Date(Date.now() + 24 * 3600 * 1000) });
    console.log(`\nqueues (Bull Board): ${address() ?? 'http://127.0.0.1:8780'}/queues   API docs: ${address() ?? 'http://127.0.0.1:8780'}/api/v1/docs`);
    console.log(`log in with this development admin token (valid 24 h, shown once): ${secret}\n`);
  } finally {
    await db.close();
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
