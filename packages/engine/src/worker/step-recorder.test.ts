/**
 * The step recorder against a real PostgreSQL and Redis: each step is a compare-and-set on the
 * run, a deferral is announced to the triggerers, and a write cut off by a database outage lands
 * once the database is back.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createDb, createKwargsCipher, dispatchIds, insertTaskInstance, type Db, type StartKey } from '@deferrable/db';
import { systemClock } from '@deferrable/triggers';
import { createLogger } from '@deferrable/logging';
import { triggerCreatedChannel } from '@deferrable/queues';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import type { Resources } from '../resources';
import { StepRecorder } from './step-recorder';

let env: TestEnv;
let db: Db;
let admin: Client;
const lines: { msg: string; step?: string }[] = [];

function resources(): Resources {
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return {
    db,
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    clock: systemClock,
    logger: createLogger({ name: 'step-recorder-test', destination }),
    cipher: createKwargsCipher([DEV_KWARGS_KEY]),
  };
}

beforeAll(async () => {
  env = await createTestEnv('steprecorder');
  db = createDb({ url: env.databaseUrl, poolMax: 2, applicationName: 'step-recorder-test' });
  admin = new Client({ connectionString: env.databaseUrl.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
});

afterAll(async () => {
  await admin?.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
  await admin?.end();
  await db?.close();
  await env?.cleanup();
});

/** A queued task instance and the key a worker starts it with. */
async function queued(): Promise<StartKey> {
  const id = randomUUID();
  await insertTaskInstance(env.db.pool, {
    id,
    taskName: 'test.task',
    args: {},
    queue: 'default',
    priority: 0,
    maxTries: 1,
    retryDelayMs: 1000,
    retryBackoff: 2,
    retryMaxDelayMs: 60_000,
    executionTimeoutMs: null,
    runAfter: null,
    idempotencyKey: null,
    actor: 'test',
  });
  const [d] = await dispatchIds(env.db.pool, [id], 'test');
  const workerId = randomUUID();
  return { id, tryNumber: d!.try_number, dispatchAttempt: d!.dispatch_attempt, workerId, actor: `worker:${workerId}` };
}

async function task(id: string): Promise<{ state: string; error: unknown; result: unknown; trigger_id: string | null; next_method: string | null }> {
  const { rows } = await env.db.pool.query('SELECT state::text, error, result, trigger_id, next_method FROM task_instance WHERE id = $1', [id]);
  return rows[0];
}

async function withDatabaseDown<T>(during: () => Promise<T>): Promise<T> {
  await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS false`);
  await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [env.databaseName]);
  try {
    return await during();
  } finally {
    await admin.query(`ALTER DATABASE "${env.databaseName}" WITH ALLOW_CONNECTIONS true`);
  }
}

test('starts a run once: a repeated dispatch of the same try reads as stale', async () => {
  const steps = new StepRecorder(resources());
  try {
    const key = await queued();
    const [first, again] = await Promise.all([steps.start(key), steps.start(key)]);
    expect(first).toMatchObject({ id: key.id, state: 'running', worker_id: key.workerId });
    expect(again).toBeNull();
    expect(await steps.start(key)).toBeNull();
  } finally {
    await steps.close(1000);
  }
});

test('records success and failure only for the run it holds', async () => {
  const steps = new StepRecorder(resources());
  try {
    const a = await queued();
    const b = await queued();
    await Promise.all([steps.start(a), steps.start(b)]);
    expect(await steps.succeed({ ...a, workerId: randomUUID() }, 1)).toBe(false);
    expect(await steps.succeed(a, { ok: true })).toBe(true);
    expect(await task(a.id)).toMatchObject({ state: 'success', result: { ok: true } });
    const error = { code: 'TASK_FAILED' as const, type: 'TaskFailedError', message: 'Error: boom', stack: 'Error: boom\n    at here' };
    expect(await steps.fail(b, error, null)).toBe(true);
    expect(await steps.fail(b, error, null)).toBe(false);
    expect(await task(b.id)).toMatchObject({ state: 'failed', error });
  } finally {
    await steps.close(1000);
  }
});

test('records a deferral with its trigger, and tells the triggerers of it', async () => {
  const steps = new StepRecorder(resources());
  const sub = env.redis.duplicate();
  const hints: string[] = [];
  try {
    await sub.subscribe(triggerCreatedChannel(env.prefix));
    sub.on('message', (_ch: string, m: string) => hints.push(m));
    const key = await queued();
    await steps.start(key);
    const triggerId = randomUUID();
    const deferral = {
      trigger: { id: triggerId, classpath: 'timedelta', kwargsToken: 'x', queue: 'slow' },
      nextMethod: 'resume',
      nextKwargs: { kwargs: {} },
      timeoutMs: null,
    };
    expect(await steps.defer(key, deferral)).toBe(true);
    expect(await task(key.id)).toMatchObject({ state: 'deferred', trigger_id: triggerId, next_method: 'resume' });
    await waitFor(() => hints.includes('slow'), 5000, 'trigger-created hint');
    // Sent again (its answer lost): matches nothing, writes no second trigger.
    expect(await steps.defer(key, { ...deferral, trigger: { ...deferral.trigger, id: randomUUID() } })).toBe(false);
    const { rows } = await env.db.pool.query('SELECT count(*)::int AS n FROM trigger');
    expect(rows[0].n).toBe(1);
  } finally {
    sub.disconnect();
    await steps.close(1000);
  }
});

test('a step cut off by a database outage is retried until it lands', async () => {
  const steps = new StepRecorder(resources());
  try {
    const key = await queued();
    await steps.start(key);
    const recorded = await withDatabaseDown(async () => {
      const write = steps.succeed(key, 'after the outage');
      await waitFor(() => lines.some((l) => l.msg === 'database unreachable; retrying the write' && l.step === 'success'), 10_000, 'a retried write');
      return { write };
    });
    expect(await recorded.write).toBe(true);
    expect(await task(key.id)).toMatchObject({ state: 'success', result: 'after the outage' });
  } finally {
    await steps.close(1000);
  }
});

test('once stopping, a write through an outage gives up after a few tries', async () => {
  const steps = new StepRecorder(resources());
  try {
    const key = await queued();
    await steps.start(key);
    steps.beginStopping();
    await withDatabaseDown(() =>
      expect(steps.fail(key, { code: 'INTERNAL', type: 'Error', message: 'x' }, null)).rejects.toThrow('is not currently accepting connections'),
    );
    expect(await task(key.id)).toMatchObject({ state: 'running' });
  } finally {
    await steps.close(1000);
  }
});
