import { describeRedacted, redactedExcerpt } from './redact';

describe('redactedExcerpt', () => {
  test('keeps the shape and the fields that name or route a task; describes arguments and everything else', () => {
    const request = {
      task: 'billing.charge',
      args: { card: '4111 1111 1111 1111', password: 'hunter2' },
      queue: 'payments',
      priority: 5,
      idempotencyKey: 'order-17',
      kwargs: ['hunter2'],
      payload: 'hunter2',
      note: 'hunter2',
    };
    const excerpt = redactedExcerpt(request);
    expect(excerpt).toEqual({
      task: 'billing.charge',
      args: '[redacted object, 2 keys]',
      queue: 'payments',
      priority: 5,
      idempotencyKey: 'order-17',
      kwargs: '[redacted array, 1 item]',
      payload: '[redacted string, 7 chars]',
      note: '[redacted string, 7 chars]',
    });
    expect(JSON.stringify(excerpt)).not.toContain('hunter2');
  });

  test('a safe field holding a value not of its type is described too', () => {
    expect(redactedExcerpt({ task: { secret: 'hunter2' }, taskInstanceId: 'ab', tryNumber: 2, jobId: null, priority: 'hunter2', queue: 7 })).toEqual({
      task: '[redacted object, 1 key]',
      taskInstanceId: 'ab',
      tryNumber: 2,
      jobId: null,
      priority: '[redacted string, 7 chars]',
      queue: '[redacted number]',
    });
    expect(redactedExcerpt({ toString: 'hunter2', constructor: 'hunter2' })).toEqual({
      toString: '[redacted string, 7 chars]',
      constructor: '[redacted string, 7 chars]',
    });
  });

  test('a value that is not an object is described whole', () => {
    expect(redactedExcerpt('hunter2')).toBe('[redacted string, 7 chars]');
    expect(redactedExcerpt([1, 2, 3])).toBe('[redacted array, 3 items]');
    expect(redactedExcerpt(42)).toBe('[redacted number]');
    expect(redactedExcerpt(null)).toBe('[redacted null]');
    expect(describeRedacted(undefined)).toBe('[redacted undefined]');
  });

  test('is bounded: at most 30 keys, long keys and safe strings cut, circular values harmless', () => {
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]));
    const excerpt = redactedExcerpt(many) as Record<string, unknown>;
    expect(Object.keys(excerpt)).toHaveLength(31);
    expect(excerpt['…']).toBe('70 more keys');
    const long = redactedExcerpt({ ['x'.repeat(500)]: 1, task: 't'.repeat(1000) }) as Record<string, unknown>;
    expect(Object.keys(long).every((k) => k.length <= 60)).toBe(true);
    expect(long.task).toHaveLength(200);
    const circular: Record<string, unknown> = { task: 'a' };
    circular.self = circular;
    expect(JSON.stringify(redactedExcerpt(circular))).toBe('{"task":"a","self":"[redacted object, 2 keys]"}');
  });
});
