import { silentLogger } from '@deferrable/logging';
import { Loop } from './loop';

describe('Loop', () => {
  test('runs at its interval, never two steps at once, and a wake runs the next step at once', async () => {
    let active = 0;
    let overlap = false;
    let steps = 0;
    const loop = new Loop('t', 10_000, async () => {
      if (active > 0) overlap = true;
      active++;
      steps++;
      await new Promise((r) => setTimeout(r, 20));
      active--;
    }, silentLogger());
    loop.start();
    await new Promise((r) => setTimeout(r, 5));
    loop.wake(); // during the first step: runs right after it
    loop.wake();
    await new Promise((r) => setTimeout(r, 100));
    expect(steps).toBe(2);
    expect(overlap).toBe(false);
    loop.wake();
    await new Promise((r) => setTimeout(r, 50));
    expect(steps).toBe(3);
    await loop.stop();
    loop.wake();
    await new Promise((r) => setTimeout(r, 30));
    expect(steps).toBe(3);
  });

  test('a failing step is retried at the next tick', async () => {
    let calls = 0;
    const loop = new Loop('t', 10, async () => {
      calls++;
      if (calls === 1) throw new Error('transient');
    }, silentLogger());
    loop.start();
    await new Promise((r) => setTimeout(r, 100));
    await loop.stop();
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  test('a step that returns a number of milliseconds runs again that soon, not at the interval', async () => {
    let calls = 0;
    const loop = new Loop('t', 10_000, async () => {
      calls++;
      return calls < 4 ? 5 : undefined; // three quick looks, then back to the interval
    }, silentLogger());
    loop.start();
    await new Promise((r) => setTimeout(r, 150));
    await loop.stop();
    expect(calls).toBe(4);
  });

  test('a step asking to run again at once still waits a few milliseconds (no spin)', async () => {
    let calls = 0;
    const loop = new Loop('t', 10_000, async () => {
      calls++;
      return 0;
    }, silentLogger());
    loop.start();
    await new Promise((r) => setTimeout(r, 100));
    await loop.stop();
    expect(calls).toBeGreaterThan(1); // it does run again without the 10 s interval
    expect(calls).toBeLessThanOrEqual(21); // but at most one step per 5 ms
  });
});
