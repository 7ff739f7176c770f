import { FakeClock } from './__tests__/support';
import { TimerQueue, type TimerEntry } from './timer-queue';

interface Entry extends TimerEntry {
  id: number;
}

describe('TimerQueue', () => {
  test('fires each live entry once, in due order, all that are due in one turn together', () => {
    const clock = new FakeClock(1_000_000);
    const fired: number[][] = [];
    const q = new TimerQueue<Entry>(clock, (due) => fired.push(due.map((e) => e.id)));
    const t0 = clock.now();
    const entries = [30, 10, 20, 10, 40].map((ms, id) => ({ id, at: t0 + ms, cancelled: false }));
    for (const e of entries) q.push(e);
    entries[2]!.cancelled = true;
    clock.advance(15);
    // Both entries due at 10 fire together; the cancelled one (20) never does.
    expect(fired.map((ids) => ids.toSorted((a, b) => a - b))).toEqual([[1, 3]]);
    clock.advance(65);
    expect(fired.slice(1)).toEqual([[0, 4]]);
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  test('cancelled far-future entries are dropped once they are most of the heap, and the rest still fire in order', () => {
    const clock = new FakeClock(1_000_000);
    const fired: number[] = [];
    const q = new TimerQueue<Entry>(clock, (due) => fired.push(...due.map((e) => e.id)));
    const t0 = clock.now();
    const far = Array.from({ length: 3000 }, (_, i) => ({ id: 1000 + i, at: t0 + 3_600_000 + i, cancelled: false }));
    const soon = Array.from({ length: 50 }, (_, i) => ({ id: i, at: t0 + 20 + (i % 7), cancelled: false }));
    for (const e of [...far, ...soon]) q.push(e);
    expect(q.size).toBe(3050);
    // Before, cancelled entries left the heap only on reaching its top: here, in an hour.
    for (const e of far.slice(0, 2000)) {
      e.cancelled = true;
      q.noteCancelled();
    }
    expect(q.size).toBeLessThanOrEqual(3050 - 1024);
    for (const e of far.slice(2000, 2500)) {
      e.cancelled = true;
      q.noteCancelled();
    }
    clock.advance(80);
    expect(fired.toSorted((a, b) => a - b)).toEqual(soon.map((e) => e.id));
    // What is left: the 500 live far entries, plus at most the cancellations not yet compacted.
    expect(q.size).toBeGreaterThanOrEqual(500);
    expect(q.size).toBeLessThan(500 + 1025);
    q.stop();
  });
});
