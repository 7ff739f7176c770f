import { Batcher } from './batcher';

describe('Batcher', () => {
  test('items added in one turn are flushed together, each gets its own result', async () => {
    const batches: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      batches.push(items);
      return items.map((i) => i * 10);
    });
    const results = await Promise.all([1, 2, 3].map((i) => b.add(i)));
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  test('a batch is cut at maxSize and at most maxConcurrent flushes run at once', async () => {
    let running = 0;
    let peak = 0;
    const sizes: number[] = [];
    const b = new Batcher<number, void>(
      async (items) => {
        running++;
        peak = Math.max(peak, running);
        sizes.push(items.length);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return items.map(() => undefined);
      },
      4,
      2,
    );
    await Promise.all(Array.from({ length: 17 }, (_, i) => b.add(i)));
    expect(sizes.reduce((a, n) => a + n, 0)).toBe(17);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    expect(peak).toBeLessThanOrEqual(2);
    expect(b.pending).toBe(0);
  });

  test('a failed flush rejects every item of its batch', async () => {
    const b = new Batcher<number, void>(async () => {
      throw new Error('db down');
    });
    await expect(Promise.all([b.add(1), b.add(2)])).rejects.toThrow('db down');
  });
});
