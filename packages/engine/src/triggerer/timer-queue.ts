/**
 * One timer for many triggers: a binary min-heap of due times and a single setTimeout for the
 * earliest. A replica holding 100,000 timer triggers keeps one small entry each instead of a
 * generator, promises and a Node timer each; everything due at once fires in one turn.
 * Cancelled entries are dropped lazily when they reach the top.
 */
export interface TimerEntry {
  at: number;
  cancelled: boolean;
}

export class TimerQueue<E extends TimerEntry> {
  private readonly heap: E[] = [];
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  constructor(
    private readonly now: () => number,
    private readonly fire: (due: E[]) => void,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  push(entry: E): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= entry.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = entry;
    if (entry.at < this.timerAt) this.arm();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.heap.length = 0;
  }

  private pop(): E {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]!.at < h[l]!.at ? r : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  private arm(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    const next = this.heap[0];
    if (!next) return;
    this.timerAt = next.at;
    // setTimeout cannot wait longer than 2^31-1 ms; re-arm on the way for far moments.
    const wait = Math.min(Math.max(0, next.at - this.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => this.tick(), wait);
  }

  private tick(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.now();
    const due: E[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const e = this.pop();
      if (!e.cancelled) due.push(e);
    }
    this.arm();
    if (due.length > 0) this.fire(due);
  }
}
