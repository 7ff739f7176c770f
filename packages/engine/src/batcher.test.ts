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

  test('with isolateFailures, a failed batch is retried item by item so only the bad item fails', async () => {
    const flushed: number[][] = [];
    const b = new Batcher<number, number>(
      async (items) => {
        flushed.push(items);
        if (items.includes(2)) throw new Error(`bad item in [${items.join(',')}]`);
        return items.map((i) => i * 10);
      },
      500,
      2,
      true,
    );
    const settled = await Promise.allSettled([1, 2, 3].map((i) => b.add(i)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(settled[0]).toMatchObject({ value: 10 });
    expect(settled[2]).toMatchObject({ value: 30 });
    expect(settled[1]).toMatchObject({ reason: new Error('bad item in [2]') });
    expect(flushed).toEqual([[1, 2, 3], [1], [2], [3]]);
    await new Promise((r) => setImmediate(r)); // the batch's bookkeeping settles after its items
    expect(b.pending).toBe(0);
  });

  test('drain waits until every item has settled', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new Batcher<number, number>(async (items) => {
      await gate;
      return items;
    });
    const added = [b.add(1), b.add(2)];
    let drained = false;
    const d = b.drain(1).then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    release();
    await d;
    expect(drained).toBe(true);
    expect(b.pending).toBe(0);
    await expect(Promise.all(added)).resolves.toEqual([1, 2]);
  });
});
