import { deleteOrphanTriggers } from '@deferrable/db';
import type { Resources } from '../../resources';

export interface TriggerCleanupOptions {
  /** Most triggers deleted per run. */
  batch: number;
}

/** Deletes triggers no deferred task waits on (their triggerers cancel them at their next sync). */
export class TriggerCleanup {
  constructor(
    private readonly res: Resources,
    private readonly opts: TriggerCleanupOptions,
  ) {}

  async run(): Promise<number> {
    const deleted = await deleteOrphanTriggers(this.res.db.pool, this.opts.batch);
    if (deleted.length) this.res.logger.info({ count: deleted.length }, 'deleted triggers no task waits on');
    return deleted.length;
  }
}
