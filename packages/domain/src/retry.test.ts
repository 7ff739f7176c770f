import fc from 'fast-check';
import { InvalidInputError, TaskFailedError, UnrecoverableTaskError } from './errors';
import { decideRetry, retryDelayMs, RetryPolicySchema } from './retry';

const NOW = Date.parse('2026-01-01T00:00:00.000Z');
const policy = { delayMs: 1000, backoff: 2, maxDelayMs: 10_000 };

describe('decideRetry', () => {
  it('fails at once on a non-retryable error, whatever tries remain', () => {
    for (const error of [new UnrecoverableTaskError('no'), new InvalidInputError('args', []), { retryable: false }]) {
      expect(decideRetry({ tryNumber: 1, maxTries: 10, policy, error, now: NOW })).toEqual({ kind: 'fail' });
    }
  });

  it('fails on the last try, and retries on the ones before', () => {
    const error = new TaskFailedError('boom');
    expect(decideRetry({ tryNumber: 3, maxTries: 3, policy, error, now: NOW })).toEqual({ kind: 'fail' });
    expect(decideRetry({ tryNumber: 4, maxTries: 3, policy, error, now: NOW })).toEqual({ kind: 'fail' });
    expect(decideRetry({ tryNumber: 1, maxTries: 1, policy, error, now: NOW })).toEqual({ kind: 'fail' });
    expect(decideRetry({ tryNumber: 2, maxTries: 3, policy, error, now: NOW }).kind).toBe('retry');
  });

  it('schedules the retry at now + delay * backoff^(try-1), capped by maxDelayMs', () => {
    const error = { retryable: true };
    const at = (tryNumber: number) => {
      const d = decideRetry({ tryNumber, maxTries: 100, policy, error, now: NOW });
      if (d.kind !== 'retry') throw new Error('expected a retry');
      return d.runAfter.getTime() - NOW;
    };
    expect([1, 2, 3, 4, 5, 6, 20].map(at)).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it('a backoff of 1 gives a constant delay', () => {
    expect([1, 2, 5, 50].map((t) => retryDelayMs(t, { delayMs: 750, backoff: 1, maxDelayMs: 10_000 }))).toEqual([750, 750, 750, 750]);
  });
});

describe('retryDelayMs (property)', () => {
  // The ranges are those RetryPolicySchema accepts, so every policy a task can have is covered.
  const policyArb = fc.record({
    delayMs: fc.integer({ min: 0, max: 7 * 24 * 3600 * 1000 }),
    backoff: fc.double({ min: 1, max: 100, noNaN: true }),
    maxDelayMs: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  });
  const tryArb = fc.integer({ min: 1, max: 1000 });

  it('is a finite integer in [0, maxDelayMs], monotonic non-decreasing in tryNumber', () => {
    fc.assert(
      fc.property(policyArb, tryArb, tryArb, (p, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const dLo = retryDelayMs(lo, p);
        const dHi = retryDelayMs(hi, p);
        for (const d of [dLo, dHi]) {
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(p.maxDelayMs);
        }
        expect(dHi).toBeGreaterThanOrEqual(dLo);
      }),
      { numRuns: 2000 },
    );
  });

  it('decideRetry never schedules further than maxDelayMs ahead, and never in the past', () => {
    fc.assert(
      fc.property(policyArb, tryArb, fc.integer({ min: 1, max: 1000 }), (p, tryNumber, maxTries) => {
        const d = decideRetry({ tryNumber, maxTries, policy: p, error: { retryable: true }, now: NOW });
        expect(d.kind).toBe(tryNumber >= maxTries ? 'fail' : 'retry');
        if (d.kind !== 'retry') return;
        const delay = d.runAfter.getTime() - NOW;
        expect(Number.isNaN(delay)).toBe(false);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(p.maxDelayMs);
      }),
      { numRuns: 2000 },
    );
  });

  it('a zero base delay stays zero however many tries (no NaN from 0 * Infinity)', () => {
    expect(retryDelayMs(1000, { delayMs: 0, backoff: 100, maxDelayMs: 5000 })).toBe(0);
    expect(retryDelayMs(1000, { delayMs: 1, backoff: 100, maxDelayMs: 5000 })).toBe(5000);
  });
});

describe('RetryPolicySchema', () => {
  it('fills the defaults and refuses out-of-range values', () => {
    expect(RetryPolicySchema.parse({})).toEqual({ maxTries: 1, delayMs: 1000, backoff: 2, maxDelayMs: 3_600_000 });
    expect(RetryPolicySchema.safeParse({ backoff: 0.5 }).success).toBe(false);
    expect(RetryPolicySchema.safeParse({ maxTries: 0 }).success).toBe(false);
    expect(RetryPolicySchema.safeParse({ delayMs: -1 }).success).toBe(false);
    expect(RetryPolicySchema.safeParse({ delayMs: 1.5 }).success).toBe(false);
  });
});
