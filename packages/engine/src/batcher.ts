/**
 * Collects items added within one turn of the event loop (or up to `maxSize`) and hands them to
 * `flush` together, so many small writes become one statement. While `maxConcurrent` flushes are
 * in flight, new items wait and join the next batch, so batches grow with the load by themselves.
 * Each `add` resolves with its item's share of the result, or rejects with the batch's error; with
 * `isolateFailures`, a failed batch is retried one item at a time, so one bad item fails alone.
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
    private readonly isolateFailures = false,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.items.push({ item, resolve, reject });
      if (this.items.length >= this.maxSize) this.launch();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.launch();
        });
      }
    });
  }

  /** Items added and not yet settled (waiting or being flushed). */
  get pending(): number {
    return this.items.length + this.inFlightItems;
  }

  /** Resolves once every item added so far (and any added meanwhile) has settled. */
  async drain(pollMs = 5): Promise<void> {
    while (this.pending > 0) await new Promise((r) => setTimeout(r, pollMs));
  }

  private launch(): void {
    while (this.items.length > 0 && this.inFlight < this.maxConcurrent) {
      const batch = this.items.splice(0, this.maxSize);
      this.inFlight++;
      this.inFlightItems += batch.length;
      this.flush(batch.map((b) => b.item))
        .then(
          (results) => batch.forEach((b, i) => b.resolve(results[i] as R)),
          async (err: unknown) => {
            if (!this.isolateFailures || batch.length === 1) return batch.forEach((b) => b.reject(err));
            await Promise.all(
              batch.map((b) =>
                this.flush([b.item]).then(
                  (r) => b.resolve(r[0] as R),
                  (e: unknown) => b.reject(e),
                ),
              ),
            );
          },
        )
        .finally(() => {
          this.inFlight--;
          this.inFlightItems -= batch.length;
          if (this.items.length > 0) this.launch();
        });
    }
  }
}
