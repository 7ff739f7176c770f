import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { InvalidInputError, PayloadTooLargeError } from './errors';
import { assertJsonSize, JsonSchema, parseInput } from './json';
import { EnqueueRequestSchema, MAX_FIRED_HINT_IDS, TaskDispatchMessageSchema, TriggerEventMessageSchema, TriggerFiredHintSchema } from './messages';

const good = {
  task: 'reports.build:daily-v2',
  args: { day: '2026-11-25', tags: ['a', 'b'], n: 3, nested: { ok: true, none: null } },
  idempotencyKey: 'daily-2026-11-25',
  queue: 'reports',
  priority: 10,
  maxTries: 3,
  retry: { delayMs: 500, backoff: 2, maxDelayMs: 60_000 },
  executionTimeoutMs: 30_000,
  runAfter: '2026-11-25T10:00:00.000Z',
};

function issuesOf(value: unknown): InvalidInputError {
  try {
    parseInput(EnqueueRequestSchema, value, 'task request');
  } catch (err) {
    if (err instanceof InvalidInputError) return err;
    throw err;
  }
  throw new Error('expected the request to be refused');
}

describe('EnqueueRequestSchema', () => {
  it('accepts a good request and keeps its values', () => {
    expect(EnqueueRequestSchema.parse(good)).toEqual(good);
  });

  it('accepts the smallest request and defaults args to {}', () => {
    expect(EnqueueRequestSchema.parse({ task: 't' })).toEqual({ task: 't', args: {} });
  });

  it('accepts runAfter with an offset', () => {
    expect(EnqueueRequestSchema.safeParse({ task: 't', runAfter: '2026-11-25T10:00:00+02:00' }).success).toBe(true);
  });

  it('rejects unknown keys, naming them', () => {
    const err = issuesOf({ task: 't', tsak: 'typo' });
    expect(err.message).toContain('tsak');
    const nested = issuesOf({ task: 't', retry: { delayMs: 1, maxTries: 5 } });
    expect(nested.issues.some((i) => i.path === 'retry')).toBe(true);
    expect(nested.message).toContain('maxTries');
  });

  it.each(['', 'has space', 'semi;colon', 'slash/name', 'émoji', 'x'.repeat(201), 'quote"'])('rejects the task name %j', (task) => {
    const err = issuesOf({ task });
    expect(new Set(err.issues.map((i) => i.path))).toEqual(new Set(['task']));
  });

  it('rejects a missing or non-string task', () => {
    expect(issuesOf({}).issues[0]?.path).toBe('task');
    expect(issuesOf({ task: 7 }).issues[0]?.path).toBe('task');
  });

  it.each([1001, -1001, 1.5, Number.MAX_SAFE_INTEGER, '5'])('rejects the priority %j', (priority) => {
    expect(issuesOf({ task: 't', priority }).issues.map((i) => i.path)).toEqual(['priority']);
  });

  it('accepts the priority bounds', () => {
    expect(EnqueueRequestSchema.parse({ task: 't', priority: 1000 }).priority).toBe(1000);
    expect(EnqueueRequestSchema.parse({ task: 't', priority: -1000 }).priority).toBe(-1000);
  });

  it('rejects the other out-of-range fields, each at its own path', () => {
    expect(issuesOf({ task: 't', maxTries: 0 }).issues[0]?.path).toBe('maxTries');
    expect(issuesOf({ task: 't', queue: 'bad queue' }).issues[0]?.path).toBe('queue');
    expect(issuesOf({ task: 't', executionTimeoutMs: 0 }).issues[0]?.path).toBe('executionTimeoutMs');
    expect(issuesOf({ task: 't', runAfter: 'tomorrow' }).issues[0]?.path).toBe('runAfter');
    expect(issuesOf({ task: 't', idempotencyKey: '' }).issues[0]?.path).toBe('idempotencyKey');
    expect(issuesOf({ task: 't', retry: { backoff: 0 } }).issues[0]?.path).toBe('retry.backoff');
  });

  it('rejects args that are not JSON', () => {
    expect(issuesOf({ task: 't', args: { n: Number.NaN } }).issues.some((i) => i.path.startsWith('args'))).toBe(true);
    expect(issuesOf({ task: 't', args: { f: () => 1 } }).issues.some((i) => i.path.startsWith('args'))).toBe(true);
    expect(issuesOf({ task: 't', args: { d: new Date() } }).issues.some((i) => i.path.startsWith('args'))).toBe(true);
  });

  // Values PostgreSQL would refuse are refused here, where they entered, with a clear reason
  // (before, they reached the INSERT and came back as database errors).
  it('rejects a NUL character in args (values and keys) and in the idempotency key', () => {
    const inValue = issuesOf({ task: 't', args: { s: 'a\u0000b' } });
    expect(inValue.issues.some((i) => i.path.startsWith('args') && /NUL/.test(i.message))).toBe(true);
    expect(issuesOf({ task: 't', args: { ['k\u0000']: 1 } }).issues.some((i) => i.path.startsWith('args'))).toBe(true);
    expect(issuesOf({ task: 't', args: { list: [{ deep: '\u0000' }] } }).issues.some((i) => i.path.startsWith('args'))).toBe(true);
    const key = issuesOf({ task: 't', idempotencyKey: 'k\u0000' });
    expect(key.issues.map((i) => i.path)).toEqual(['idempotencyKey']);
    expect(key.message).toMatch(/NUL/);
  });

  it('bounds retry.maxDelayMs by its INTEGER column', () => {
    expect(EnqueueRequestSchema.parse({ task: 't', retry: { maxDelayMs: 2 ** 31 - 1 } }).retry?.maxDelayMs).toBe(2 ** 31 - 1);
    expect(issuesOf({ task: 't', retry: { maxDelayMs: 2 ** 31 } }).issues[0]?.path).toBe('retry.maxDelayMs');
  });
});

describe('queue message schemas', () => {
  it('accept well-formed messages and refuse the rest', () => {
    const id = randomUUID();
    expect(TaskDispatchMessageSchema.parse({ taskInstanceId: id, tryNumber: 1, dispatchAttempt: 2 })).toEqual({
      taskInstanceId: id,
      tryNumber: 1,
      dispatchAttempt: 2,
    });
    expect(TaskDispatchMessageSchema.safeParse({ taskInstanceId: 'nope', tryNumber: 1, dispatchAttempt: 1 }).success).toBe(false);
    expect(TaskDispatchMessageSchema.safeParse({ taskInstanceId: id, tryNumber: 0, dispatchAttempt: 1 }).success).toBe(false);
    expect(TriggerEventMessageSchema.safeParse({ triggerId: id }).success).toBe(true);
    expect(TriggerEventMessageSchema.safeParse({}).success).toBe(false);
  });
});

describe('parseInput', () => {
  const schema = z.object({ a: z.object({ b: z.array(z.number()) }), c: z.string() });

  it('returns the parsed value', () => {
    expect(parseInput(schema, { a: { b: [1] }, c: 'x' }, 'thing')).toEqual({ a: { b: [1] }, c: 'x' });
  });

  it('throws InvalidInputError naming where and every issue path', () => {
    let err: unknown;
    try {
      parseInput(schema, { a: { b: [1, 'two'] } }, 'kwargs of trigger type "x"');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    const e = err as InvalidInputError;
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.retryable).toBe(false);
    expect(e.where).toBe('kwargs of trigger type "x"');
    expect(e.issues.map((i) => i.path).sort()).toEqual(['a.b.1', 'c']);
    expect(e.message).toMatch(/^invalid kwargs of trigger type "x": /);
    expect(e.message).toContain('a.b.1: ');
    expect(e.message).toContain('c: ');
  });

  it('names the root when the value itself is wrong', () => {
    expect(() => parseInput(schema, 'str', 'body')).toThrow(/invalid body: \(root\): /);
  });
});

describe('JsonSchema', () => {
  it('accepts nested JSON and refuses non-finite numbers and non-JSON values', () => {
    expect(JsonSchema.safeParse({ a: [1, 'x', null, true, { b: [] }] }).success).toBe(true);
    expect(JsonSchema.safeParse(Infinity).success).toBe(false);
    expect(JsonSchema.safeParse(undefined).success).toBe(false);
    expect(JsonSchema.safeParse([1n]).success).toBe(false);
  });
});

describe('assertJsonSize', () => {
  it('returns the UTF-8 byte size of the JSON text', () => {
    expect(assertJsonSize({ a: 1 }, 100, 'args')).toBe(7);
    // Multi-byte characters count in bytes, not in UTF-16 units.
    expect(assertJsonSize('é', 100, 'args')).toBe(4);
    expect(assertJsonSize(undefined, 100, 'args')).toBe(4);
  });

  it('allows exactly the limit and throws PayloadTooLargeError above it', () => {
    const value = { s: 'x'.repeat(10) }; // {"s":"xxxxxxxxxx"} = 18 bytes
    expect(assertJsonSize(value, 18, 'args')).toBe(18);
    let err: unknown;
    try {
      assertJsonSize(value, 17, 'task args');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    const e = err as PayloadTooLargeError;
    expect(e.code).toBe('PAYLOAD_TOO_LARGE');
    expect(e.retryable).toBe(false);
    expect(e.what).toBe('task args');
    expect(e.bytes).toBe(18);
    expect(e.limit).toBe(17);
  });

  it('counts multi-byte text against the limit', () => {
    expect(() => assertJsonSize('€'.repeat(10), 20, 'args')).toThrow(PayloadTooLargeError);
  });
});

describe('TriggerFiredHintSchema', () => {
  it('reads comma-separated trigger ids, up to the most one hint carries', () => {
    const ids = [randomUUID(), randomUUID()];
    expect(parseInput(TriggerFiredHintSchema, ids.join(','), 'hint')).toEqual(ids);
    const many = Array.from({ length: MAX_FIRED_HINT_IDS }, () => randomUUID());
    expect(parseInput(TriggerFiredHintSchema, many.join(','), 'hint')).toHaveLength(MAX_FIRED_HINT_IDS);
  });

  it.each([
    ['empty', ''],
    ['not an id', 'abc'],
    ['one bad id among good ones', `${randomUUID()},nope`],
    ['a trailing comma', `${randomUUID()},`],
    ['too many ids', Array.from({ length: MAX_FIRED_HINT_IDS + 1 }, () => randomUUID()).join(',')],
  ])('refuses %s with a clear error', (_label, message) => {
    expect(() => parseInput(TriggerFiredHintSchema, message, 'trigger-fired hint')).toThrow(InvalidInputError);
    expect(() => parseInput(TriggerFiredHintSchema, message, 'trigger-fired hint')).toThrow(/trigger-fired hint/);
  });
});
