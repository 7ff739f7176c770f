import { UnknownCallbackError, InvalidInputError } from './errors';
import { FAIL_METHOD, MAX_DEFER_TIMEOUT_MS, parseDeferOptions } from './task';
import type { Trigger } from './trigger';

const trigger: Trigger = { serialize: () => ({ type: 't', kwargs: {} }), async *run() {} };
const type = { name: 'billing.charge', callbacks: { resume: () => 'ok' } };

describe('parseDeferOptions', () => {
  test('accepts valid options, with or without kwargs and timeout', () => {
    expect(parseDeferOptions(type, { trigger, method: 'resume' })).toMatchObject({ method: 'resume' });
    expect(parseDeferOptions(type, { trigger, method: 'resume', kwargs: { n: 1 }, timeoutMs: MAX_DEFER_TIMEOUT_MS })).toMatchObject({
      timeoutMs: MAX_DEFER_TIMEOUT_MS,
    });
  });

  test.each([
    [{ trigger, method: 'resume', timeoutMs: -1000 }, 'timeoutMs'],
    [{ trigger, method: 'resume', timeoutMs: 0 }, 'timeoutMs'],
    [{ trigger, method: 'resume', timeoutMs: 2.5 }, 'timeoutMs'],
    [{ trigger, method: 'resume', timeoutMs: MAX_DEFER_TIMEOUT_MS + 1 }, 'timeoutMs'],
    [{ trigger, method: 'resume', timeoutMs: '100' }, 'timeoutMs'],
    [{ trigger, method: '' }, 'method'],
    [{ trigger }, 'method'],
    [{ trigger, method: 'resume', kwargs: 'x' }, 'kwargs'],
    [{ trigger, method: 'resume', kwargs: { n: undefined } }, 'kwargs'],
    [{ trigger: { type: 't' }, method: 'resume' }, 'trigger'],
    [{ trigger, method: 'resume', timeout: 10 }, 'timeout'],
  ])('refuses %j with INVALID_INPUT naming %s', (options, path) => {
    let err: unknown;
    try {
      parseDeferOptions(type, options);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).message).toContain('deferral options of task "billing.charge"');
    expect((err as InvalidInputError).message).toContain(path);
  });

  test.each(['nope', 'toString', '__proto__', FAIL_METHOD])('refuses the method %s: not a callback of the task type', (method) => {
    expect(() => parseDeferOptions(type, { trigger, method })).toThrow(UnknownCallbackError);
    expect(() => parseDeferOptions({ name: 'no.callbacks' }, { trigger, method })).toThrow(UnknownCallbackError);
  });
});
