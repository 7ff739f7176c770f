import { timeoutDeferrals } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';

export interface TimeoutsOptions {
  /** Most deferrals failed per run. */
  batch: number;
  actor: string;
}

/** deferred -> scheduled into `__fail__` for deferrals past their trigger timeout; dispatched at once. */
export class Timeouts {
  constructor(
    private readonly res: Resources,
    private readonly opts: TimeoutsOptions,
    private readonly dispatcher: Pick<Dispatcher, 'dispatchNow'>,
  ) {}

  async run(): Promise<number> {
    const timedOut = await timeoutDeferrals(this.res.db.pool, this.opts.batch, this.opts.actor);
    if (timedOut.length) this.res.logger.info({ count: timedOut.length }, 'deferrals timed out');
    await this.dispatcher.dispatchNow(timedOut);
    return timedOut.length;
  }
}
