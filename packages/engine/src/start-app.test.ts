/**
 * startApp, the start sequence of every app, in this process against a real PostgreSQL: the health
 * server starts before anything is registered, and a start that fails leaves no job row running.
 */
import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { ConfigError } from '@deferrable/domain';
import { createKwargsCipher } from '@deferrable/db';
import { createLogger } from '@deferrable/logging';
import { systemClock } from '@deferrable/triggers';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { ProcessJob } from './process-job';
import type { Resources } from './resources';
import { startApp, type App } from './runtime';

let env: TestEnv;
const lines: { level: number; msg: string; healthPort?: number }[] = [];

beforeAll(async () => {
  env = await createTestEnv('startapp');
});

afterAll(async () => {
  await env?.cleanup();
});

function resources(): Resources {
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return {
    db: env.db,
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    clock: systemClock,
    logger: createLogger({ name: 'start-app-test', destination }),
    cipher: createKwargsCipher([DEV_KWARGS_KEY]),
  };
}

/** An app whose start registers a real job row, then runs `after`. */
function appWith(health: App['health'], after: () => Promise<void> = async () => undefined): App & { job: ProcessJob; calls: string[] } {
  const res = resources();
  const job = new ProcessJob(res, 'worker', { capacity: 1, queues: ['default'], heartbeatMs: 1000, load: () => 0 });
  const calls: string[] = [];
  return {
    logger: res.logger,
    health,
    job,
    db: res.db,
    calls,
    async preflight() {
      calls.push('preflight');
    },
    async start() {
      calls.push('start');
      await job.start();
      await after();
    },
    async stop() {
      calls.push('stop');
      await job.stop();
    },
  };
}

async function jobRow(id: string): Promise<{ state: string; ended_at: Date | null } | undefined> {
  return (await env.db.pool.query('SELECT state, ended_at FROM job WHERE id = $1', [id])).rows[0];
}

async function occupy(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}

test('serves health before the app registers, and stops both', async () => {
  let liveBeforeStart: number | null = null;
  const app = appWith({ port: 0, portFixed: true, host: '127.0.0.1' });
  const started = await startApp('worker', {
    ...app,
    async start() {
      const port = lines.findLast((l) => l.msg.startsWith('worker health endpoints on'))?.healthPort;
      liveBeforeStart = port ? (await fetch(`http://127.0.0.1:${port}/livez`)).status : null;
      await app.start();
    },
  });
  expect(liveBeforeStart).toBe(200);
  expect(app.calls).toEqual(['preflight', 'start']);
  expect((await jobRow(app.job.id))?.state).toBe('running');
  await started.stop();
  expect((await jobRow(app.job.id))?.state).toBe('success');
});

test('a start that fails after registering ends the job row as failed and closes the app', async () => {
  const app = appWith({ port: 0, portFixed: true, host: '127.0.0.1' }, async () => {
    throw new Error('consumer could not start');
  });
  await expect(startApp('worker', app)).rejects.toThrow('consumer could not start');
  const row = await jobRow(app.job.id);
  expect(row?.state).toBe('failed');
  expect(row?.ended_at).not.toBeNull();
  expect(app.calls).toEqual(['preflight', 'start', 'stop']);
});

test('a failed preflight check starts nothing', async () => {
  const app = appWith({ port: 0, portFixed: true, host: '127.0.0.1' });
  await expect(startApp('worker', { ...app, preflight: async () => Promise.reject(new Error('not migrated')) })).rejects.toThrow('not migrated');
  expect(app.calls).toEqual([]);
  expect(await jobRow(app.job.id)).toBeUndefined();
});

test('a health port set explicitly and in use refuses to start, before registering anything', async () => {
  const busy = await occupy();
  try {
    const app = appWith({ port: busy.port, portFixed: true, host: '127.0.0.1' });
    const failure = startApp('worker', app);
    await expect(failure).rejects.toThrow(ConfigError);
    await expect(failure).rejects.toThrow(new RegExp(`DEFERRABLE_HEALTH_PORT: port ${busy.port} on 127.0.0.1 is in use`));
    expect(app.calls).toEqual(['preflight']);
    expect(await jobRow(app.job.id)).toBeUndefined();
  } finally {
    busy.server.close();
  }
});

test('the default health port in use falls back to a free port, and says which', async () => {
  const busy = await occupy();
  try {
    const app = appWith({ port: busy.port, portFixed: false, host: '127.0.0.1' });
    const started = await startApp('worker', app);
    try {
      expect(started.healthPort).not.toBeNull();
      expect(started.healthPort).not.toBe(busy.port);
      expect((await fetch(`http://127.0.0.1:${started.healthPort}/livez`)).status).toBe(200);
      expect(lines.some((l) => l.level === 40 && l.msg.includes(`default health port ${busy.port} is in use`) && l.healthPort === started.healthPort)).toBe(
        true,
      );
    } finally {
      await started.stop();
    }
  } finally {
    busy.server.close();
  }
});
