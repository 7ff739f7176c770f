import type { RecordedError } from '@deferrable/domain';
import { deferRuns, failRun, startRuns, succeedRuns, type Deferral, type DeferKey, type RunKey, type StartKey, type TaskInstanceRow } from '@deferrable/db';
import { HintPublisher, triggerCreatedChannel } from '@deferrable/queues';
import { Batcher } from '../batcher';
import { retryThroughOutage } from '../outage';
import type { Resources } from '../resources';

/**
 * Records the steps of a worker's runs in PostgreSQL: start, deferral, success, failure. Every
 * write is a compare-and-set on the run (its try, worker and dispatch attempt); each answers
 * whether the run was still this worker's.
 *
 * The steps of all slots are recorded together: one statement (and one commit) for every start,
 * deferral or success that is ready at the same moment, instead of one per task. While one batch
 * commits the next one gathers, so batches grow with the load and add no wait when idle.
 */
export class StepRecorder {
  private readonly starts: Batcher<StartKey, TaskInstanceRow | null>;
  private readonly deferrals: Batcher<{ key: DeferKey; deferral: Deferral }, boolean>;
  private readonly successes: Batcher<{ key: RunKey; result: unknown }, boolean>;
  private readonly hints: HintPublisher;
  private stopping = false;

  constructor(private readonly res: Resources) {
    const pool = res.db.pool;
    this.starts = new Batcher((keys) => startRuns(pool, keys), 1000, 1, true);
    this.deferrals = new Batcher((runs) => deferRuns(pool, runs), 1000, 1, true);
    this.successes = new Batcher((runs) => succeedRuns(pool, runs), 1000, 1, true);
    this.hints = new HintPublisher(res.redisUrl, triggerCreatedChannel(res.prefix));
  }

  /** queued -> running; the row, or null when the dispatch is stale (another got there first). */
  start(key: StartKey): Promise<TaskInstanceRow | null> {
    return this.untilRecorded('start', key, () => this.starts.add(key));
  }

  /** running -> deferred with its new trigger; the triggerers are told of it once recorded. */
  async defer(key: DeferKey, deferral: Deferral): Promise<boolean> {
    const ok = await this.untilRecorded('deferral', key, () => this.deferrals.add({ key, deferral }));
    if (ok) this.hints.publish(deferral.trigger.queue ?? 'default');
    return ok;
  }

  succeed(key: RunKey, result: unknown): Promise<boolean> {
    return this.untilRecorded('success', key, () => this.successes.add({ key, result }));
  }

  /** running -> up_for_retry (retryInMs given) or failed (null). */
  fail(key: RunKey, error: RecordedError, retryInMs: number | null): Promise<boolean> {
    return this.untilRecorded('failure', key, () => failRun(this.res.db.pool, key, error, retryInMs));
  }

  /** From now on a write cut off by an outage gives up after a few tries: the reaper takes its run back. */
  beginStopping(): void {
    this.stopping = true;
  }

  /** Waits (up to `timeoutMs`) for the steps still being recorded in batches, then closes. */
  async close(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const recorded = Promise.all([this.starts.drain(), this.deferrals.drain(), this.successes.drain()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([recorded, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    await this.hints.close();
  }

  /**
   * Sends a write that records a run's step until it lands. Through a database outage (a restart,
   * a failover) it keeps trying, and the run stays in hand: it is heartbeated again once the
   * database is back, so the outage neither fails the task nor hands its try to the reaper.
   * Errors about the write itself are not retried. Every write here is a compare-and-set: one that
   * did commit before its connection was cut matches nothing the second time (the run reads as no
   * longer ours, and the state is right; a deferral names its dispatch attempt, so it cannot match
   * the run a resume started since). One case costs a try: a start that committed but whose answer
   * was lost reads as stale; the run, not heartbeated, is then reaped and retried.
   */
  private untilRecorded<T>(step: string, run: { id: string; tryNumber: number }, write: () => Promise<T>): Promise<T> {
    return retryThroughOutage(write, {
      giveUp: (attempt) => this.stopping && attempt >= 4,
      onRetry: (err, attempt) => {
        if (attempt % 10 === 0)
          this.res.logger.warn({ err, taskInstanceId: run.id, try: run.tryNumber, step, attempt }, 'database unreachable; retrying the write');
      },
      baseDelayMs: 50,
      maxDelayMs: 2000,
    });
  }
}
