/**
 * One timer for many triggers: a binary min-heap of due times and a single clock timer for the
 * earliest. A replica holding 100,000 timer triggers keeps one small entry each instead of a
 * generator, promises and a Node timer each; everything due at once fires in one turn.
 * Cancelled entries are dropped lazily when they reach the top, and all at once when they make up
 * most of the heap: a cancelled far-future timer (a task cancelled, a trigger taken over) would
 * otherwise keep its entry, and its trigger, until its moment.
 */
import type { Clock, ClockTimer } from '@deferrable/domain';

export interface TimerEntry {
  at: number;
  cancelled: boolean;
}

export class TimerQueue<E extends TimerEntry> {
  private readonly heap: E[] = [];
  private timer: ClockTimer | null = null;
  private timerAt = Infinity;
  /** Entries in the heap whose cancellation was reported (noteCancelled). */
  private cancelledInHeap = 0;

  constructor(
    private readonly clock: Clock,
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

  /** Reports that an entry in the heap was cancelled (once per entry). */
  noteCancelled(): void {
    this.cancelledInHeap++;
    if (this.cancelledInHeap > 1024 && this.cancelledInHeap * 2 > this.heap.length) this.compact();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
    this.heap.length = 0;
    this.cancelledInHeap = 0;
  }

  /** Drops every cancelled entry and rebuilds the heap in place (O(n)). */
  private compact(): void {
    const h = this.heap;
    let n = 0;
    for (const e of h) if (!e.cancelled) h[n++] = e;
    h.length = n;
    this.cancelledInHeap = 0;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i);
    this.arm();
  }

  private siftDown(start: number): void {
    const h = this.heap;
    const entry = h[start]!;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]!.at < h[l]!.at ? r : l;
      if (h[c]!.at >= entry.at) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = entry;
  }

  private pop(): E {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.siftDown(0);
    }
    if (top.cancelled && this.cancelledInHeap > 0) this.cancelledInHeap--;
    return top;
  }

  private arm(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
    const next = this.heap[0];
    if (!next) return;
    this.timerAt = next.at;
    // setTimeout cannot wait longer than 2^31-1 ms; re-arm on the way for far moments.
    const wait = Math.min(Math.max(0, next.at - this.clock.now()), 2 ** 31 - 1);
    this.timer = this.clock.setTimer(wait, () => this.tick());
  }

  private tick(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.clock.now();
    const due: E[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const e = this.pop();
      if (!e.cancelled) due.push(e);
    }
    this.arm();
    if (due.length > 0) this.fire(due);
  }
}
