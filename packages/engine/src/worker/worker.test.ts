/**
 * A TaskWorker in this process against a real PostgreSQL and Redis: tasks are written and
 * dispatched as the scheduler would, and the test reads the state of record and the log.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createKwargsCipher, dispatchIds, insertTaskInstance } from '@deferrable/db';
import { defineTask, type TaskType } from '@deferrable/domain';
import { createLogger } from '@deferrable/logging';
import { Producer, taskDispatch } from '@deferrable/queues';
import { builtinTriggerRegistry, systemClock, TimeDeltaTrigger } from '@deferrable/triggers';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { TaskRegistry } from '../task-registry';
import { TaskWorker } from './index';

interface LogLine {
  msg: string;
  taskInstanceId?: string;
  err?: { code?: string; message?: string; stack?: string };
}

function parseTheInvoice(): never {
  throw new Error('the invoice is malformed');
}

const throws = defineTask({
  name: 'test.throws',
  execute() {
    parseTheInvoice();
  },
});

/** Defers with the options given as arguments (as a task author might get them wrong). */
const defersWith = defineTask({
  name: 'test.defers-with',
  execute(ctx) {
    const options = ctx.args as { method?: unknown; kwargs?: unknown; timeoutMs?: unknown };
    ctx.defer({ trigger: new TimeDeltaTrigger(60_000, ctx.now()), ...options } as Parameters<typeof ctx.defer>[0]);
  },
  callbacks: {
    resume() {
      return 'resumed';
    },
  },
});

const TASKS: TaskType[] = [throws, defersWith];

let env: TestEnv;
let worker: TaskWorker;
let producer: Producer<typeof taskDispatch.schema, string>;
const lines: LogLine[] = [];

beforeAll(async () => {
  env = await createTestEnv('worker');
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  const res = {
    db: env.db,
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    clock: systemClock,
    logger: createLogger({ name: 'worker-test', destination }),
    cipher: createKwargsCipher([DEV_KWARGS_KEY]),
  };
  worker = new TaskWorker(res, {
    tasks: new TaskRegistry(TASKS),
    triggers: builtinTriggerRegistry(),
    slots: 2,
    queues: ['default'],
    heartbeatMs: 500,
    maxPayloadBytes: 256 * 1024,
    shutdownGraceMs: 1000,
  });
  await worker.start();
  producer = new Producer(taskDispatch, env.redisUrl, env.prefix);
});

afterAll(async () => {
  await worker?.stop();
  await producer?.close();
  await env?.cleanup();
});

/** Writes a task instance, dispatches it, and waits until it leaves the worker. */
async function run(taskName: string, args: unknown): Promise<{ id: string; state: string; error: Record<string, unknown> | null }> {
  const id = randomUUID();
  await insertTaskInstance(env.db.pool, {
    id,
    taskName,
    args,
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
  await producer.add('default', { taskInstanceId: id, tryNumber: d!.try_number, dispatchAttempt: d!.dispatch_attempt });
  return waitFor(
    async () => {
      const { rows } = await env.db.pool.query('SELECT id, state::text, error FROM task_instance WHERE id = $1', [id]);
      return ['failed', 'deferred', 'success'].includes(rows[0].state) ? rows[0] : null;
    },
    15_000,
    `task ${taskName} to leave the worker`,
  );
}

describe('a task that throws', () => {
  test('is recorded and logged with the stack of its own error', async () => {
    const t = await run('test.throws', {});
    expect(t.state).toBe('failed');
    expect(t.error).toMatchObject({ code: 'TASK_FAILED', message: 'Error: the invoice is malformed' });
    const stack = String(t.error?.stack);
    expect(stack).toMatch(/^Error: the invoice is malformed\n/);
    expect(stack).toContain('parseTheInvoice');
    expect(stack).toContain('worker.test.ts');
    const line = await waitFor(() => lines.find((l) => l.msg === 'task failed' && l.taskInstanceId === t.id), 5000, 'the failure log line');
    expect(line.err?.stack).toContain('parseTheInvoice');
  });
});

describe('deferral options are checked when the task defers', () => {
  test.each([
    [{ method: 'resume', timeoutMs: -1000 }, 'INVALID_INPUT', 'timeoutMs'],
    [{ method: 'resume', timeoutMs: 1.5 }, 'INVALID_INPUT', 'timeoutMs'],
    [{ method: 'resume', timeoutMs: 8 * 24 * 3600 * 1000 }, 'INVALID_INPUT', 'timeoutMs'],
    [{ method: '' }, 'INVALID_INPUT', 'method'],
    [{ method: 'resume', kwargs: [1, 2] }, 'INVALID_INPUT', 'kwargs'],
    [{ method: 'resume', timeout: 5000 }, 'INVALID_INPUT', 'timeout'],
    [{ method: 'nope' }, 'UNKNOWN_CALLBACK', 'nope'],
    [{ method: 'toString' }, 'UNKNOWN_CALLBACK', 'toString'],
  ])('%j fails the task with %s naming %s', async (options, code, named) => {
    const t = await run('test.defers-with', options);
    expect(t.state).toBe('failed');
    expect(t.error).toMatchObject({ code });
    expect(String(t.error?.message)).toContain(named);
    const { rows } = await env.db.pool.query('SELECT count(*)::int AS n FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id WHERE ti.id = $1', [t.id]);
    expect(rows[0].n).toBe(0);
  });

  test('valid options defer the task', async () => {
    const t = await run('test.defers-with', { method: 'resume', kwargs: { a: 1 }, timeoutMs: 60_000 });
    expect(t.state).toBe('deferred');
  });
});
