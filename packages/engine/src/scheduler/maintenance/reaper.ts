import { inTransaction, lockStaleRuns, reapRuns } from '@deferrable/db';
import { HeartbeatLostError, recordError } from '@deferrable/domain';
import type { Resources } from '../../resources';
import { retryInMs } from '../../retry';
import type { Retries } from './retries';

export interface ReaperOptions {
  /** A running task whose heartbeat is older than this is reaped (retried or failed). */
  reapAfterMs: number;
  /** Most runs reaped per run. */
  batch: number;
  actor: string;
}

/**
 * running -> up_for_retry (tries left) or failed, for runs whose worker stopped heartbeating
 * (killed, partitioned). Retries due at once are scheduled and dispatched right after.
 */
export class Reaper {
  constructor(
    private readonly res: Resources,
    private readonly opts: ReaperOptions,
    private readonly retries: Pick<Retries, 'run'>,
  ) {}

  async run(): Promise<number> {
    const reaped = await inTransaction(this.res.db.pool, async (client) => {
      const rows = await lockStaleRuns(client, this.opts.reapAfterMs, this.opts.batch);
      const now = this.res.clock.now();
      const runs = rows.map((r) => {
        const err = new HeartbeatLostError(r.worker_id);
        return { row: r, id: r.id, tryNumber: r.try_number, error: recordError(err), retryInMs: retryInMs(r, err, now) };
      });
      await reapRuns(client, runs, this.opts.actor);
      for (const { row, retryInMs: retryIn } of runs) {
        this.res.logger.warn(
          { taskInstanceId: row.id, try: row.try_number, workerId: row.worker_id, retry: retryIn !== null },
          'reaped a run whose worker stopped heartbeating',
        );
      }
      return rows.length;
    });
    if (reaped) await this.retries.run();
    return reaped;
  }
}
