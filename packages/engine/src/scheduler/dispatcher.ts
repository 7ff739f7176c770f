import { CHANNELS, dispatchDueWithin, dispatchIds, listen, type DispatchRow, type Listener } from '@deferrable/db';
import { NEW_WORK_PRIORITY, Producer, taskDispatch } from '@deferrable/queues';
import { Loop, type LoopAgain } from '../loop';
import type { Resources } from '../resources';

export interface DispatcherOptions {
  pollMs: number;
  dispatchBatch: number;
  /**
   * Dispatch into a queue waits while it holds this many queued tasks (or twice its live workers'
   * slots, if more); the rest stay scheduled in PostgreSQL, in priority order.
   */
  dispatchAhead: number;
  /** A worker whose heartbeat is older than this does not count towards a queue's slots. */
  workersAliveWithinMs: number;
  /** Written as the actor of every transition. */
  actor: string;
}

function groupByQueue(rows: readonly DispatchRow[]): Map<string, DispatchRow[]> {
  const groups = new Map<string, DispatchRow[]>();
  for (const r of rows) {
    const group = groups.get(r.queue);
    if (group) group.push(r);
    else groups.set(r.queue, [r]);
  }
  return groups;
}

/**
 * scheduled -> queued, and one dispatch job per queued task. Its loop dispatches what is due in
 * priority order up to each queue's backlog mark; a NOTIFY from an enqueue (or any other module
 * calling `wake`) runs it at once. Other modules publish the rows they dispatched themselves
 * (resumes, retries, re-dispatches) through `publish`.
 */
export class Dispatcher {
  private readonly dispatches: Producer<typeof taskDispatch.schema, string>;
  private readonly loop: Loop;
  private listener: Listener | null = null;
  /** How soon to look again while a queue is at its backlog mark (see dispatchDue). */
  private heldRetryMs = 50;

  constructor(
    private readonly res: Resources,
    private readonly opts: DispatcherOptions,
  ) {
    this.dispatches = new Producer(taskDispatch, res.redisUrl, res.prefix);
    this.loop = new Loop('dispatch', opts.pollMs, () => this.dispatchDue(), res.logger);
  }

  start(): void {
    this.listener = listen({
      url: this.res.databaseUrl,
      channels: [CHANNELS.taskScheduled],
      onNotify: () => this.loop.wake(),
      onConnect: () => this.loop.wake(),
      onError: (err) => this.res.logger.warn({ err }, 'LISTEN connection error; reconnecting'),
    });
    this.loop.start();
  }

  /** Runs a dispatch step soon (at once unless one is running; then right after it). */
  wake(): void {
    this.loop.wake();
  }

  /** Stops the loop; publishing keeps working until `close`. */
  async stop(): Promise<void> {
    await this.listener?.close();
    this.listener = null;
    await this.loop.stop();
  }

  async close(): Promise<void> {
    await this.dispatches.close();
  }

  /** Publishes one dispatch job per row, grouped by task queue; resumed tasks jump the queue. */
  async publish(rows: readonly DispatchRow[]): Promise<void> {
    const message = (r: DispatchRow) => ({ taskInstanceId: r.id, tryNumber: r.try_number, dispatchAttempt: r.dispatch_attempt });
    for (const [queue, group] of groupByQueue(rows)) {
      try {
        await this.dispatches.addBulk(queue, group.filter((r) => r.next_method !== null).map(message));
        await this.dispatches.addBulk(queue, group.filter((r) => r.next_method === null).map(message), { priority: NEW_WORK_PRIORITY });
      } catch (err) {
        // The rows stay queued in PostgreSQL; the re-dispatch scan publishes them again.
        this.res.logger.warn({ err, queue, count: group.length }, 'publishing dispatches failed');
      }
    }
  }

  /** scheduled -> queued for these task instances at once (past the backlog mark), and publishes them. */
  async dispatchNow(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.publish(await dispatchIds(this.res.db.pool, ids, this.opts.actor));
  }

  /** BullMQ's state of a queued row's current dispatch job ('unknown' when Redis no longer has it). */
  async jobState(row: DispatchRow): Promise<string> {
    const jobId = taskDispatch.jobId({ taskInstanceId: row.id, tryNumber: row.try_number, dispatchAttempt: row.dispatch_attempt })!;
    return this.dispatches.jobState(row.queue, jobId);
  }

  /**
   * The loop's step (other modules call `wake`, so that steps never overlap): dispatches what is due, batch by batch. While a served queue is at its backlog mark, asks to
   * look again soon (its workers drain it quickly): after 50 ms while dispatching keeps finding
   * room, backing off to the poll interval while it finds none (workers busy with long tasks).
   */
  async dispatchDue(): Promise<LoopAgain | undefined> {
    const limits = { ahead: this.opts.dispatchAhead, workersAliveWithinMs: this.opts.workersAliveWithinMs };
    let dispatched = 0;
    let held = false;
    for (;;) {
      const batch = await dispatchDueWithin(this.res.db.pool, this.opts.dispatchBatch, this.opts.actor, limits);
      await this.publish(batch.rows);
      dispatched += batch.rows.length;
      held = batch.held;
      if (batch.rows.length < this.opts.dispatchBatch) break;
    }
    const quick = Math.max(10, Math.min(50, this.opts.pollMs / 10));
    this.heldRetryMs = held && dispatched === 0 ? Math.min(this.opts.pollMs, this.heldRetryMs * 2) : quick;
    return held ? { againInMs: this.heldRetryMs } : undefined;
  }
}
