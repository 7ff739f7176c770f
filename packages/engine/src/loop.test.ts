import { silentLogger } from '@deferrable/logging';
import { Loop } from './loop';

// Jest's fake timers drive the loop's setTimeout: every figure below is exact, whatever the load
// on the machine (real sleeps made these assertions fail when the machine was busy).
describe('Loop', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  /** A step that takes `ms` of (fake) time, counting its calls and any overlap. */
  function slowStep(ms: number) {
    const s = { calls: 0, active: 0, overlap: false };
    const step = async () => {
      if (s.active > 0) s.overlap = true;
      s.active++;
      s.calls++;
      await new Promise((r) => setTimeout(r, ms));
      s.active--;
    };
    return { s, step };
  }

  test('runs at its interval, never two steps at once, and a wake runs the next step at once', async () => {
    const { s, step } = slowStep(20);
    const loop = new Loop('t', 10_000, step, silentLogger());
    loop.start();
    await jest.advanceTimersByTimeAsync(5);
    expect(s.calls).toBe(1);
    loop.wake(); // during the first step: runs right after it, once
    loop.wake();
    await jest.advanceTimersByTimeAsync(100);
    expect(s.calls).toBe(2);
    expect(s.overlap).toBe(false);
    loop.wake();
    await jest.advanceTimersByTimeAsync(50);
    expect(s.calls).toBe(3);
    await jest.advanceTimersByTimeAsync(10_000);
    expect(s.calls).toBe(4); // the interval
    const stopped = loop.stop();
    await jest.advanceTimersByTimeAsync(20);
    await stopped;
    loop.wake();
    await jest.advanceTimersByTimeAsync(30_000);
    expect(s.calls).toBe(4);
    expect(s.overlap).toBe(false);
  });

  test('a failing step is retried at the next tick', async () => {
    let calls = 0;
    const loop = new Loop(
      't',
      10,
      async () => {
        calls++;
        if (calls === 1) throw new Error('transient');
      },
      silentLogger(),
    );
    loop.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await jest.advanceTimersByTimeAsync(10);
    expect(calls).toBe(2);
    await loop.stop();
  });

  test('a step that returns { againInMs } runs again that soon, not at the interval', async () => {
    let calls = 0;
    const loop = new Loop(
      't',
      10_000,
      async () => {
        calls++;
        return calls < 4 ? { againInMs: 5 } : undefined; // three quick looks, then back to the interval
      },
      silentLogger(),
    );
    loop.start();
    await jest.advanceTimersByTimeAsync(15);
    expect(calls).toBe(4);
    await jest.advanceTimersByTimeAsync(9_000);
    expect(calls).toBe(4);
    await jest.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(5);
    await loop.stop();
  });

  test('a step asking to run again at once still waits a few milliseconds (no spin)', async () => {
    let calls = 0;
    const loop = new Loop(
      't',
      10_000,
      async () => {
        calls++;
        return { againInMs: 0 };
      },
      silentLogger(),
    );
    loop.start();
    await jest.advanceTimersByTimeAsync(100);
    await loop.stop();
    // One step at 0 ms, then one every 5 ms: not the 10 s interval, and not a spin.
    expect(calls).toBe(21);
  });
});
