import { fromStates, TRANSITIONS, type TaskState, type TransitionName } from '@deferrable/domain';

/*
 * SQL fragments built from the domain's transition table, its single source of truth: no
 * statement names a task state in a literal of its own (a test scans the statements for one).
 */

/** A task state as a typed SQL literal. */
export function sqlState(state: TaskState): string {
  return `'${state}'::task_state`;
}

/** `IN (...)` over the states a named transition may start from. */
export function fromSql(name: TransitionName): string {
  return `IN (${fromStates(name).map(sqlState).join(', ')})`;
}

/** The state a named transition ends in, as a typed SQL literal. */
export function toSql(name: TransitionName): string {
  return sqlState(TRANSITIONS[name].to);
}
