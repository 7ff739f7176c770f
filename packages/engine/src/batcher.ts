/**
 * Collects items added within one turn of the event loop (or up to `maxSize`) and hands them to
 * `flush` together, so many small writes become one statement. Each `add` resolves with its item's
 * share of the result, or rejects with the batch's error.
 */
export class Batcher<T, R> {
  private items: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private inFlight = 0;
  private inFlightItems = 0;

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly maxSize = 500,
    private readonly maxConcurrent = 2,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.items.push({ item, resolve, reject });
      if (this.items.length >= this.maxSize) this.drain();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.drain();
        });
      }
    });
  }

  /** Items added and not yet settled (waiting or being flushed). */
  get pending(): number {
    return this.items.length + this.inFlightItems;
  }

  private drain(): void {
    while (this.items.length > 0 && this.inFlight < this.maxConcurrent) {
      const batch = this.items.splice(0, this.maxSize);
      this.inFlight++;
      this.inFlightItems += batch.length;
      this.flush(batch.map((b) => b.item)).then(
        (results) => batch.forEach((b, i) => b.resolve(results[i] as R)),
        (err: unknown) => batch.forEach((b) => b.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.inFlightItems -= batch.length;
        if (this.items.length > 0) this.drain();
      });
    }
  }
}
