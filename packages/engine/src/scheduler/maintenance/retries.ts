import { retriesDue } from '@deferrable/db';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';
import { DueTransition, type DueTransitionOptions } from './due-transition';

/** up_for_retry -> scheduled (next try) once the retry delay has passed; dispatched at once. */
export class Retries extends DueTransition {
  constructor(res: Resources, opts: DueTransitionOptions, dispatcher: Pick<Dispatcher, 'dispatchNow'>) {
    super(res, opts, dispatcher, retriesDue);
  }
}
