import { InvalidTransitionError } from './errors';
import { isTerminal, TASK_STATES, TERMINAL_STATES, type TaskState } from './states';
import { applyTransition, canTransition, fromStates, TRANSITIONS, transitionsBetween, type TransitionName } from './transitions';

type From = TaskState | null;

/** What a call returned, or the fields of the typed error it threw (one shape, so a test compares it whole). */
function outcomeOf(apply: () => TaskState) {
  try {
    return { to: apply() };
  } catch (err) {
    const e = err as InvalidTransitionError;
    const type = err instanceof InvalidTransitionError ? InvalidTransitionError : err;
    return { error: { type, code: e.code, retryable: e.retryable, transition: e.transition, from: e.from, to: e.to, names: e.message.includes(e.from ?? '(new)') } };
  }
}

const NON_TERMINAL: TaskState[] = ['scheduled', 'queued', 'running', 'deferred', 'up_for_retry'];

/** The state machine of ARCHITECTURE.md, written out independently of TRANSITIONS. */
const ALLOWED: ReadonlyArray<readonly [From, TaskState]> = [
  [null, 'scheduled'],
  [null, 'deferred'],
  ['scheduled', 'queued'],
  ['queued', 'running'],
  ['running', 'success'],
  ['running', 'failed'],
  ['running', 'deferred'],
  ['running', 'up_for_retry'],
  ['up_for_retry', 'scheduled'],
  ['deferred', 'scheduled'],
  ['deferred', 'success'],
  ['deferred', 'failed'],
  ['deferred', 'skipped'],
  ...NON_TERMINAL.map((s) => [s, 'cancelled'] as const),
];

const key = (from: From, to: TaskState): string => `${from ?? '(new)'} -> ${to}`;
const allowedKeys = new Set(ALLOWED.map(([f, t]) => key(f, t)));
const FROMS: From[] = [null, ...TASK_STATES];
const CROSS = FROMS.flatMap((from) => TASK_STATES.map((to) => [from, to] as const));
const NAMES = Object.keys(TRANSITIONS) as TransitionName[];

describe('the task-instance state machine', () => {
  it('the cross product covers every (from, to) pair, including from nothing', () => {
    expect(CROSS).toHaveLength((TASK_STATES.length + 1) * TASK_STATES.length);
    expect(allowedKeys.size).toBe(ALLOWED.length);
  });

  it.each(ALLOWED.map(([f, t]) => [key(f, t), f, t] as const))('allows %s', (_label, from, to) => {
    expect(canTransition(from, to)).toBe(true);
    const names = transitionsBetween(from, to);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(applyTransition(name, from)).toBe(to);
  });

  const refused = CROSS.filter(([f, t]) => !allowedKeys.has(key(f, t)));

  it('refuses every other pair (cross product minus the allowed ones)', () => {
    expect(refused).toHaveLength(CROSS.length - ALLOWED.length);
  });

  it.each(refused.map(([f, t]) => [key(f, t), f, t] as const))('refuses %s', (_label, from, to) => {
    expect(canTransition(from, to)).toBe(false);
    expect(transitionsBetween(from, to)).toEqual([]);
    // Every transition that ends in `to` must throw when started from `from`.
    for (const name of NAMES.filter((n) => TRANSITIONS[n].to === to)) {
      expect(() => applyTransition(name, from)).toThrow(InvalidTransitionError);
    }
  });

  it('applyTransition of every named transition from every state either follows the table or throws a typed error', () => {
    for (const name of NAMES) {
      for (const from of FROMS) {
        const to = TRANSITIONS[name].to;
        const allowed = allowedKeys.has(key(from, to)) && (TRANSITIONS[name].from as readonly From[]).includes(from);
        const outcome = outcomeOf(() => applyTransition(name, from));
        const expected = allowed
          ? { to }
          : { error: { type: InvalidTransitionError, code: 'INVALID_TRANSITION', retryable: false, transition: name, from, to, names: true } };
        expect(outcome).toEqual(expected);
      }
    }
  });

  it('nothing leaves a terminal state', () => {
    for (const from of TERMINAL_STATES) {
      for (const to of TASK_STATES) expect(canTransition(from, to)).toBe(false);
      for (const name of NAMES) expect(() => applyTransition(name, from)).toThrow(InvalidTransitionError);
    }
  });

  it('every non-terminal state can be cancelled, and only those', () => {
    expect(fromStates('cancel').sort()).toEqual([...NON_TERMINAL].sort());
    for (const s of TASK_STATES) expect(canTransition(s, 'cancelled')).toBe(!isTerminal(s));
  });

  it('fromStates drops the "new row" marker and keeps the real states', () => {
    expect(fromStates('enqueue')).toEqual([]);
    expect(fromStates('enqueueDeferred')).toEqual([]);
    expect(fromStates('dispatch')).toEqual(['scheduled']);
    expect(fromStates('resume')).toEqual(['deferred']);
  });

  it('the named transitions are the ones the architecture describes', () => {
    expect(applyTransition('enqueue', null)).toBe('scheduled');
    expect(applyTransition('enqueueDeferred', null)).toBe('deferred');
    expect(applyTransition('dispatch', 'scheduled')).toBe('queued');
    expect(applyTransition('start', 'queued')).toBe('running');
    expect(applyTransition('succeed', 'running')).toBe('success');
    expect(applyTransition('fail', 'running')).toBe('failed');
    expect(applyTransition('defer', 'running')).toBe('deferred');
    expect(applyTransition('scheduleRetry', 'running')).toBe('up_for_retry');
    expect(applyTransition('retryDue', 'up_for_retry')).toBe('scheduled');
    expect(applyTransition('resume', 'deferred')).toBe('scheduled');
    expect(applyTransition('triggerSucceed', 'deferred')).toBe('success');
    expect(applyTransition('triggerFail', 'deferred')).toBe('failed');
    expect(applyTransition('triggerSkip', 'deferred')).toBe('skipped');
  });
});

describe('states', () => {
  it('the terminal states are exactly success, failed, skipped, cancelled', () => {
    expect(TASK_STATES.filter(isTerminal).sort()).toEqual(['cancelled', 'failed', 'skipped', 'success']);
    expect([...TERMINAL_STATES].sort()).toEqual(TASK_STATES.filter(isTerminal).sort());
  });
});
