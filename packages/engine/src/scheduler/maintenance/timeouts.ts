import { timeoutDeferrals } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';
import { DueTransition, type DueTransitionOptions } from './due-transition';

/** deferred -> scheduled into `__fail__` for deferrals past their trigger timeout; dispatched at once. */
export class Timeouts extends DueTransition {
  constructor(res: Resources, opts: DueTransitionOptions, dispatcher: Pick<Dispatcher, 'dispatchNow'>) {
    super(res, opts, dispatcher, timeoutDeferrals, 'deferrals timed out');
  }
}
