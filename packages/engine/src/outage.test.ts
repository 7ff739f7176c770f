import { retryThroughOutage } from './outage';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('retryThroughOutage', () => {
  test('waits out an unreachable database, with growing delays, and returns the result', async () => {
    let calls = 0;
    const retries: number[] = [];
    const started = Date.now();
    const result = await retryThroughOutage(
      async () => {
        if (++calls < 4) throw refused();
        return 'done';
      },
      { giveUp: () => false, onRetry: (_err, attempt) => retries.push(attempt), baseDelayMs: 10, maxDelayMs: 25 },
    );
    expect(result).toBe('done');
    expect(retries).toEqual([0, 1, 2]);
    // 10 + 20 + 25 (capped) ms of waiting at least.
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  test('throws any other error at once', async () => {
    let calls = 0;
    const bad = Object.assign(new Error('syntax error'), { code: '42601' });
    await expect(
      retryThroughOutage(
        async () => {
          calls++;
          throw bad;
        },
        { giveUp: () => false, onRetry: () => undefined, baseDelayMs: 1, maxDelayMs: 1 },
      ),
    ).rejects.toBe(bad);
    expect(calls).toBe(1);
  });

  test('gives up when told to, and accepts its own notion of retryable', async () => {
    let calls = 0;
    await expect(
      retryThroughOutage(
        async () => {
          calls++;
          throw new Error('anything');
        },
        { retryable: () => true, giveUp: (attempt) => attempt >= 2, onRetry: () => undefined, baseDelayMs: 1, maxDelayMs: 1 },
      ),
    ).rejects.toThrow('anything');
    expect(calls).toBe(3);
  });
});
