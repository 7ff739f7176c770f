import { randomUUID } from 'node:crypto';
import { registerJob, taskTypeConflicts } from '@deferrable/db';
import { defineTask, InvalidInputError, PayloadTooLargeError, UnknownTaskTypeError, type TaskType } from '@deferrable/domain';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { z } from 'zod';
import { TaskCatalog } from './catalog';
import { describeTaskType } from './definition';
import { enqueueTask } from './enqueue';
import { publishTaskTypes } from './publish';

const report = defineTask({
  name: 'cat.report',
  args: z.object({ seconds: z.number().min(0).max(60), label: z.string().max(10).default('x'), mode: z.enum(['fast', 'slow']).optional() }),
  retry: { maxTries: 3, delayMs: 500, backoff: 3 },
  executionTimeoutMs: 60_000,
  queue: 'reports',
  queues: ['reports-bulk'],
  priority: 5,
  execute() {},
  callbacks: { done: () => null, again: () => null },
});
const anyArgs = defineTask({ name: 'cat.any-args', execute() {} });

describe('describeTaskType', () => {
  test('the definition: input JSON Schema of the arguments, defaults, sorted callbacks, a stable hash', () => {
    const d = describeTaskType(report);
    expect(d).toMatchObject({ name: 'cat.report', queue: 'reports', queues: ['reports-bulk'], priority: 5, maxTries: 3, retryDelayMs: 500 });
    expect(d).toMatchObject({ retryBackoff: 3, retryMaxDelayMs: 3_600_000, executionTimeoutMs: 60_000, callbacks: ['again', 'done'] });
    // A field with a default is optional for the sender.
    expect(d.argsSchema).toMatchObject({ type: 'object', required: ['seconds'] });
    expect(describeTaskType({ ...report }).definitionHash).toBe(d.definitionHash);
    expect(describeTaskType({ ...report, retry: { maxTries: 4 } }).definitionHash).not.toBe(d.definitionHash);
    expect(describeTaskType(anyArgs)).toMatchObject({ argsSchema: null, queue: 'default', maxTries: 1, executionTimeoutMs: null });
  });

  test('a bad definition is refused when published, naming the field', () => {
    expect(() => describeTaskType({ ...anyArgs, queue: 'a:b' })).toThrow(/definition of task type "cat.any-args".*queue/);
    expect(() => describeTaskType({ ...anyArgs, retry: { maxTries: 0 } })).toThrow(InvalidInputError);
  });
});

describe('the task catalog (real PostgreSQL)', () => {
  let env: TestEnv;
  const workerA = randomUUID();
  const workerB = randomUUID();
  const count = async () => Number((await env.db.pool.query('SELECT count(*) FROM task_instance')).rows[0].count);

  beforeAll(async () => {
    env = await createTestEnv('catalog');
    for (const id of [workerA, workerB]) {
      await registerJob(env.db.pool, { id, jobType: 'worker', hostname: 'h', pid: 1, capacity: 4, queues: ['default'] });
    }
  });
  afterAll(async () => {
    await env.cleanup();
  });

  test('before any worker registered a type, enqueue is refused with a clear error and writes nothing', async () => {
    const catalog = new TaskCatalog(env.db.pool);
    const err = await enqueueTask(env.db.pool, catalog, { task: 'cat.report', args: { seconds: 1 } }, { actor: 't' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownTaskTypeError);
    expect((err as Error).message).toMatch(/no task type named "cat.report".*no worker has registered any task type yet/);
    expect(await count()).toBe(0);
  });

  test('allowUnregistered: an unknown type is written with the system defaults', async () => {
    const catalog = new TaskCatalog(env.db.pool, { allowUnregistered: true });
    const checked = await catalog.check({ task: 'cat.not-yet', args: { anything: [1] } });
    expect(checked).toMatchObject({ queue: 'default', priority: 0, maxTries: 1, retryDelayMs: 1000, retryBackoff: 2, executionTimeoutMs: null });
  });

  describe('once published', () => {
    let catalog: TaskCatalog;
    beforeAll(async () => {
      const conflicts = await publishTaskTypes(env.db.pool, workerA, [report, anyArgs], { aliveWithinMs: 60_000 });
      if (conflicts.length > 0) throw new Error(`unexpected conflicts: ${JSON.stringify(conflicts)}`);
      catalog = new TaskCatalog(env.db.pool);
    });

    test('the definition sets the defaults; the request overrides them field by field', async () => {
      const { id } = await enqueueTask(env.db.pool, catalog, { task: 'cat.report', args: { seconds: 1 } }, { actor: 't' });
      const row = (await env.db.pool.query('SELECT * FROM task_instance WHERE id = $1', [id])).rows[0];
      expect(row).toMatchObject({ queue: 'reports', priority: 5, max_tries: 3, retry_delay_ms: 500, retry_backoff: 3, retry_max_delay_ms: 3_600_000 });
      expect(row.execution_timeout_ms).toBe(60_000);
      const over = await catalog.check({
        task: 'cat.report',
        args: { seconds: 2 },
        queue: 'reports-bulk',
        priority: -1,
        maxTries: 7,
        retry: { delayMs: 10 },
        executionTimeoutMs: 5,
      });
      expect(over).toMatchObject({ queue: 'reports-bulk', priority: -1, maxTries: 7, retryDelayMs: 10, retryBackoff: 3, executionTimeoutMs: 5 });
    });

    test('an unknown task names the close registered ones', async () => {
      const err = await catalog.check({ task: 'cat.reprot', args: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnknownTaskTypeError);
      expect((err as UnknownTaskTypeError).suggestions).toEqual(['cat.report']);
      expect((err as Error).message).toBe('no task type named "cat.reprot" is registered; did you mean "cat.report"?');
      expect(((await catalog.check({ task: 'zzzzzzzz', args: {} }).catch((e: unknown) => e)) as UnknownTaskTypeError).suggestions).toEqual([]);
    });

    test.each([
      [{ seconds: 'soon' }, 'args.seconds', /must be number/],
      [{}, 'args.seconds', /must have required property 'seconds'/],
      [{ seconds: 99 }, 'args.seconds', /must be <= 60/],
      [{ seconds: 1, label: 'far too long a label' }, 'args.label', /must NOT have more than 10 characters/],
      [{ seconds: 1, mode: 'medium' }, 'args.mode', /must be equal to one of the allowed values: "fast", "slow"/],
    ])('arguments %j fail the schema at %s, and nothing is written', async (args, path, message) => {
      const before = await count();
      const err = await enqueueTask(env.db.pool, catalog, { task: 'cat.report', args }, { actor: 't' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      const issue = (err as InvalidInputError).issues.find((i) => i.path === path);
      expect(issue?.message).toMatch(message);
      expect((err as Error).message).toMatch(/^invalid arguments of task "cat.report"/);
      expect(await count()).toBe(before);
    });

    test('a queue the definition does not allow is refused (a typo would wait for ever)', async () => {
      const err = await catalog.check({ task: 'cat.report', args: { seconds: 1 }, queue: 'reprots' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).issues).toEqual([
        { path: 'queue', message: 'task type "cat.report" runs on queues "reports", "reports-bulk", not "reprots"' },
      ]);
    });

    test('oversized arguments are refused before anything else', async () => {
      const small = new TaskCatalog(env.db.pool, { maxPayloadBytes: 1024 });
      await expect(small.check({ task: 'cat.any-args', args: { blob: 'x'.repeat(2000) } })).rejects.toBeInstanceOf(PayloadTooLargeError);
    });

    test('a type without an argument schema takes any JSON', async () => {
      await expect(catalog.check({ task: 'cat.any-args', args: { a: [1, { b: null }] } })).resolves.toMatchObject({ taskName: 'cat.any-args' });
    });

    test('a changed definition is seen once the cache expires; two live workers that disagree are a conflict', async () => {
      const fresh = new TaskCatalog(env.db.pool, { cacheTtlMs: 50 });
      await expect(fresh.check({ task: 'cat.report', args: { seconds: 30 } })).resolves.toBeTruthy();
      const stricter: TaskType = { ...report, args: z.object({ seconds: z.number().max(10) }) };
      const conflicts = await publishTaskTypes(env.db.pool, workerB, [stricter], { aliveWithinMs: 60_000 });
      expect(conflicts.map((c) => [c.name, c.hashes.length, [...c.jobIds].sort()])).toEqual([['cat.report', 2, [workerA, workerB].sort()]]);
      const version = (await env.db.pool.query("SELECT version FROM task_type WHERE name = 'cat.report'")).rows[0].version;
      expect(version).toBe(2);
      await waitFor(
        async () => (await fresh.check({ task: 'cat.report', args: { seconds: 30 } }).catch((e: unknown) => e)) instanceof InvalidInputError,
        5000,
        'the new schema',
      );
      // Once the other worker's row ends, nothing disagrees any more.
      await env.db.pool.query("UPDATE job SET state = 'success', ended_at = now() WHERE id = $1", [workerA]);
      expect(await taskTypeConflicts(env.db.pool, 60_000)).toEqual([]);
    });
  });
});
