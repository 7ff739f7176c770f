import {
  ConfigError,
  DeferrableError,
  ExecutionTimeoutError,
  HeartbeatLostError,
  InvalidInputError,
  InvalidTransitionError,
  KwargsDecryptionError,
  PayloadTooLargeError,
  recordError,
  MAX_STACK,
  TaskFailedError,
  toDeferrableError,
  TriggerFailedError,
  TriggerTimeoutError,
  UnknownCallbackError,
  UnknownTaskTypeError,
  TaskNotFoundError,
  DatabaseUnavailableError,
  UnknownTriggerTypeError,
  UnrecoverableTaskError,
  type ErrorCode,
} from './errors';
import { TaskDeferred } from './task';

// A Record over ErrorCode: adding a code without listing it here fails the type check.
describe('typed errors', () => {
  const cases: Array<[DeferrableError, ErrorCode, boolean]> = [
    [new InvalidTransitionError('start', 'success', 'running'), 'INVALID_TRANSITION', false],
    [new InvalidInputError('args', [{ path: 'a.b', message: 'bad' }]), 'INVALID_INPUT', false],
    [new UnknownTaskTypeError('t'), 'UNKNOWN_TASK_TYPE', false],
    [new TaskNotFoundError('id'), 'TASK_NOT_FOUND', false],
    [new DatabaseUnavailableError(), 'DATABASE_UNAVAILABLE', true],
    [new UnknownTriggerTypeError('x'), 'UNKNOWN_TRIGGER_TYPE', false],
    [new UnknownCallbackError('t', 'm'), 'UNKNOWN_CALLBACK', false],
    [new TriggerTimeoutError('id'), 'TRIGGER_TIMEOUT', true],
    [new TriggerFailedError('id', 'why'), 'TRIGGER_FAILED', true],
    [new ExecutionTimeoutError(10), 'EXECUTION_TIMEOUT', true],
    [new TaskFailedError('x'), 'TASK_FAILED', true],
    [new UnrecoverableTaskError('x'), 'UNRECOVERABLE', false],
    [new HeartbeatLostError('w'), 'HEARTBEAT_LOST', true],
    [new PayloadTooLargeError('args', 10, 5), 'PAYLOAD_TOO_LARGE', false],
    [new KwargsDecryptionError('x'), 'KWARGS_DECRYPTION', false],
    [new ConfigError('DATABASE_URL', 'missing'), 'CONFIG', false],
  ];

  it.each(cases.map(([e, code, retryable]) => [e.name, e, code, retryable] as const))(
    '%s has its code, its class name and its retryability',
    (name, err, code, retryable) => {
      expect(err).toBeInstanceOf(DeferrableError);
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe(code);
      expect(err.retryable).toBe(retryable);
      expect(err.name).toBe(name);
      expect(err.name).not.toBe('DeferrableError');
    },
  );

  it('the error messages name what went wrong', () => {
    expect(new InvalidInputError('args', [{ path: '', message: 'Required' }]).message).toBe('invalid args: (root): Required');
    expect(new ConfigError('REDIS_URL', 'not a URL').message).toContain('REDIS_URL');
    expect(new UnknownTriggerTypeError('nope').message).toContain('"nope"');
    expect(new PayloadTooLargeError('args', 10, 5).message).toContain('10 bytes');
  });

  it('a deferral is control flow, not an error', () => {
    expect(toDeferrableError(new TaskDeferred({ method: 'm', trigger: {} as never }))).toBeInstanceOf(TaskFailedError);
    expect(new TaskDeferred({ method: 'm', trigger: {} as never })).not.toBeInstanceOf(Error);
  });
});

describe('toDeferrableError', () => {
  it('keeps a DeferrableError as it is', () => {
    const e = new UnrecoverableTaskError('stop');
    expect(toDeferrableError(e)).toBe(e);
  });

  it('wraps a plain Error as a retryable TASK_FAILED with the original as cause', () => {
    const original = new RangeError('out of range');
    const e = toDeferrableError(original);
    expect(e).toBeInstanceOf(TaskFailedError);
    expect(e.code).toBe('TASK_FAILED');
    expect(e.retryable).toBe(true);
    expect(e.message).toBe('RangeError: out of range');
    expect(e.cause).toBe(original);
  });

  it('wraps non-errors, even unprintable ones and huge strings', () => {
    expect(toDeferrableError('oops').message).toBe('non-error thrown: oops');
    expect(toDeferrableError(undefined).message).toBe('non-error thrown: undefined');
    const unprintable = {
      toString() {
        throw new Error('no');
      },
    };
    expect(toDeferrableError(unprintable).message).toBe('non-error thrown: (unprintable)');
    expect(toDeferrableError(Object.create(null)).message).toBe('non-error thrown: (unprintable)');
    expect(toDeferrableError('x'.repeat(10_000)).message.length).toBeLessThanOrEqual('non-error thrown: '.length + 200);
  });
});

describe('recordError', () => {
  it('keeps the code and type and caps the message', () => {
    const r = recordError(new UnrecoverableTaskError('y'.repeat(5000)));
    expect(r.code).toBe('UNRECOVERABLE');
    expect(r.type).toBe('UnrecoverableTaskError');
    expect(r.message).toHaveLength(2000);
    expect(r.message).toBe('y'.repeat(2000));
  });

  it('writes a NUL character as the text \\u0000 (jsonb refuses NUL; a trigger error carrying one was never recorded)', () => {
    const r = recordError(new Error('bad\u0000byte'));
    expect(r.message).not.toContain('\u0000');
    expect(r.message).toContain('bad\\u0000byte');
  });

  it('records foreign errors as TASK_FAILED', () => {
    expect(recordError(new TypeError('bad'))).toMatchObject({ code: 'TASK_FAILED', type: 'TaskFailedError', message: 'TypeError: bad' });
  });

  it("keeps the stack of the task code's own error, bounded", () => {
    function whereTheTaskThrew(): never {
      throw new TypeError('bad');
    }
    let thrown: unknown;
    try {
      whereTheTaskThrew();
    } catch (err) {
      thrown = err;
    }
    const r = recordError(thrown);
    expect(r.stack).toMatch(/^TypeError: bad\n/);
    expect(r.stack).toContain('whereTheTaskThrew');
    expect(r.stack).toContain('errors.test.ts');
    const deep = new Error('deep');
    deep.stack = `Error: deep\n${'    at frame (file.js:1:1)\n'.repeat(1000)}\u0000`;
    expect(recordError(deep).stack).toHaveLength(MAX_STACK);
    // Thrown by the task itself as ours: its own stack.
    expect(recordError(new UnrecoverableTaskError('no')).stack).toContain('errors.test.ts');
  });

  it('keeps no stack for what the system raises itself, nor for a thrown non-error', () => {
    expect(recordError(new HeartbeatLostError('w1')).stack).toBeUndefined();
    expect(recordError('a string').stack).toBeUndefined();
  });

  it('is plain JSON (it is stored on the task instance)', () => {
    const r = recordError(new HeartbeatLostError('w1'));
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    expect(Object.keys(r).sort()).toEqual(['code', 'message', 'type']);
  });
});
