import { redispatch, staleQueued, type DispatchRow, type QueuedCursor } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';

export interface RedispatchOptions {
  /** A queued task whose job is missing from Redis for this long is dispatched again. */
  redispatchAfterMs: number;
  /** Most long-queued rows whose job is looked up in Redis per run. */
  checksPerRun: number;
  actor: string;
}

// BullMQ states in which a dispatch job will still reach a worker.
const LIVE_JOB_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * A new dispatch attempt for queued tasks whose job Redis lost (Redis emptied, a scheduler killed
 * between its commit and its publish). Each long-queued task's own job is looked up: a count of
 * the queue's live jobs proves nothing, as other tasks' jobs would hide a lost one. A run checks
 * a bounded number of rows and the next run resumes after the last one (oldest first, starting
 * over at the end), so on a busy queue every row is checked in turn, not only the oldest.
 */
export class Redispatch {
  private cursor: QueuedCursor | null = null;

  constructor(
    private readonly res: Resources,
    private readonly opts: RedispatchOptions,
    private readonly dispatcher: Pick<Dispatcher, 'jobState' | 'publish'>,
  ) {}

  async run(): Promise<number> {
    const stale = await staleQueued(this.res.db.pool, this.opts.redispatchAfterMs, this.opts.checksPerRun, this.cursor);
    this.cursor = stale.length < this.opts.checksPerRun ? null : (stale[stale.length - 1]?.cursor ?? null);
    if (stale.length === 0) return 0;
    // All at once (one round trip's wait for the batch); a failed look-up is no evidence of a
    // loss (Redis may be briefly away): skipped.
    const states = await Promise.all(stale.map((row) => this.dispatcher.jobState(row).catch(() => null)));
    const lost = stale.filter((_, i) => {
      const state = states[i];
      return typeof state === 'string' && !LIVE_JOB_STATES.has(state);
    });
    const again: DispatchRow[] = [];
    for (const row of lost) {
      const next = await redispatch(this.res.db.pool, row, this.opts.actor);
      if (next) again.push(next);
    }
    if (again.length) {
      this.res.logger.warn({ count: again.length }, 're-dispatching queued tasks whose jobs were lost');
      await this.dispatcher.publish(again);
    }
    return again.length;
  }
}
