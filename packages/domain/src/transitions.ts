import type { TaskState } from './states';

/**
 * Every named transition of a task instance: the states it may start from and the state it ends in.
 * `enqueue` starts from nothing (a new row). The database layer performs each one as a
 * compare-and-set on `from` (and the try number), so a stale or repeated message changes nothing.
 */
export const TRANSITIONS = {
  enqueue: { from: [null], to: 'scheduled' },
  enqueueDeferred: { from: [null], to: 'deferred' },
  dispatch: { from: ['scheduled'], to: 'queued' },
  start: { from: ['queued'], to: 'running' },
  succeed: { from: ['running'], to: 'success' },
  fail: { from: ['running'], to: 'failed' },
  defer: { from: ['running'], to: 'deferred' },
  scheduleRetry: { from: ['running'], to: 'up_for_retry' },
  retryDue: { from: ['up_for_retry'], to: 'scheduled' },
  resume: { from: ['deferred'], to: 'scheduled' },
  triggerSucceed: { from: ['deferred'], to: 'success' },
  triggerFail: { from: ['deferred'], to: 'failed' },
  triggerSkip: { from: ['deferred'], to: 'skipped' },
  cancel: { from: ['scheduled', 'queued', 'running', 'deferred', 'up_for_retry'], to: 'cancelled' },
} as const satisfies Record<string, { from: readonly (TaskState | null)[]; to: TaskState }>;

export type TransitionName = keyof typeof TRANSITIONS;

export function canTransition(from: TaskState | null, to: TaskState): boolean {
  return transitionsBetween(from, to).length > 0;
}

export function transitionsBetween(from: TaskState | null, to: TaskState): TransitionName[] {
  return (Object.keys(TRANSITIONS) as TransitionName[]).filter((name) => {
    const t = TRANSITIONS[name];
    return t.to === to && (t.from as readonly (TaskState | null)[]).includes(from);
  });
}

/** The `from` states of a transition, for building compare-and-set statements. */
export function fromStates(name: TransitionName): TaskState[] {
  const from: readonly (TaskState | null)[] = TRANSITIONS[name].from;
  return from.filter((s): s is TaskState => s !== null);
}
