import type { Queryable } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';

export interface DueTransitionOptions {
  /** Most rows moved per run. */
  batch: number;
  actor: string;
}

/**
 * A time-based transition: one statement moves the rows that are due (a retry delay passed, a
 * deferral timed out) to `scheduled`, and the dispatcher dispatches them at once.
 */
export class DueTransition {
  constructor(
    private readonly res: Resources,
    private readonly opts: DueTransitionOptions,
    private readonly dispatcher: Pick<Dispatcher, 'dispatchNow'>,
    private readonly statement: (db: Queryable, limit: number, actor: string) => Promise<string[]>,
    /** Logged (info, with the count) when a run moved rows. */
    private readonly logAs?: string,
  ) {}

  async run(): Promise<number> {
    const due = await this.statement(this.res.db.pool, this.opts.batch, this.opts.actor);
    if (due.length && this.logAs) this.res.logger.info({ count: due.length }, this.logAs);
    await this.dispatcher.dispatchNow(due);
    return due.length;
  }
}
