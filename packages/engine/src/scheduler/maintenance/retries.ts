import { retriesDue } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';

export interface RetriesOptions {
  /** Most retries scheduled per run. */
  batch: number;
  actor: string;
}

/** up_for_retry -> scheduled (next try) once the retry delay has passed; dispatched at once. */
export class Retries {
  constructor(
    private readonly res: Resources,
    private readonly opts: RetriesOptions,
    private readonly dispatcher: Pick<Dispatcher, 'dispatchNow'>,
  ) {}

  async run(): Promise<number> {
    const due = await retriesDue(this.res.db.pool, this.opts.batch, this.opts.actor);
    await this.dispatcher.dispatchNow(due);
    return due.length;
  }
}
