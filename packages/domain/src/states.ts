/** Task-instance states. The string values are stored in PostgreSQL's `task_state` enum. */
export const TASK_STATES = ['scheduled', 'queued', 'running', 'deferred', 'up_for_retry', 'success', 'failed', 'skipped', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_STATES: readonly TaskState[] = ['success', 'failed', 'skipped', 'cancelled'];

/** Exhaustive: adding a state without deciding whether it is terminal fails to compile. */
export function isTerminal(state: TaskState): boolean {
  switch (state) {
    case 'success':
    case 'failed':
    case 'skipped':
    case 'cancelled':
      return true;
    case 'scheduled':
    case 'queued':
    case 'running':
    case 'deferred':
    case 'up_for_retry':
      return false;
  }
}
