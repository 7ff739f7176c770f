import { failRun, inTransaction, lockStaleRuns } from '@deferrable/db';
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
      for (const r of rows) {
        const err = new HeartbeatLostError(r.worker_id);
        const retryIn = retryInMs(r, err, this.res.clock.now());
        await failRun(client, { id: r.id, tryNumber: r.try_number, workerId: r.worker_id ?? '', actor: this.opts.actor }, recordError(err), retryIn);
        this.res.logger.warn({ taskInstanceId: r.id, try: r.try_number, workerId: r.worker_id, retry: retryIn !== null }, 'reaped a run whose worker stopped heartbeating');
      }
      return rows.length;
    });
    if (reaped) await this.retries.run();
    return reaped;
  }
}
