import { isTerminal, TASK_STATES, TERMINAL_STATES, type TaskState } from './states';
import { canTransition, fromStates, TRANSITIONS, transitionsBetween, type TransitionName } from './transitions';

type From = TaskState | null;

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
    for (const name of names) expect(TRANSITIONS[name]).toMatchObject({ to, from: expect.arrayContaining([from]) });
  });

  const refused = CROSS.filter(([f, t]) => !allowedKeys.has(key(f, t)));

  it('refuses every other pair (cross product minus the allowed ones)', () => {
    expect(refused).toHaveLength(CROSS.length - ALLOWED.length);
  });

  it.each(refused.map(([f, t]) => [key(f, t), f, t] as const))('refuses %s', (_label, from, to) => {
    expect(canTransition(from, to)).toBe(false);
    expect(transitionsBetween(from, to)).toEqual([]);
    // No transition that ends in `to` starts from `from`.
    for (const name of NAMES.filter((n) => TRANSITIONS[n].to === to)) expect(TRANSITIONS[name].from).not.toContain(from);
  });

  it('nothing leaves a terminal state', () => {
    for (const from of TERMINAL_STATES) {
      for (const to of TASK_STATES) expect(canTransition(from, to)).toBe(false);
      for (const name of NAMES) expect(TRANSITIONS[name].from).not.toContain(from);
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
    expect(transitionsBetween(null, 'scheduled')).toContain('enqueue');
    expect(transitionsBetween(null, 'deferred')).toContain('enqueueDeferred');
    expect(transitionsBetween('scheduled', 'queued')).toContain('dispatch');
    expect(transitionsBetween('queued', 'running')).toContain('start');
    expect(transitionsBetween('running', 'success')).toContain('succeed');
    expect(transitionsBetween('running', 'failed')).toContain('fail');
    expect(transitionsBetween('running', 'deferred')).toContain('defer');
    expect(transitionsBetween('running', 'up_for_retry')).toContain('scheduleRetry');
    expect(transitionsBetween('up_for_retry', 'scheduled')).toContain('retryDue');
    expect(transitionsBetween('deferred', 'scheduled')).toContain('resume');
    expect(transitionsBetween('deferred', 'success')).toContain('triggerSucceed');
    expect(transitionsBetween('deferred', 'failed')).toContain('triggerFail');
    expect(transitionsBetween('deferred', 'skipped')).toContain('triggerSkip');
  });
});

describe('states', () => {
  it('the terminal states are exactly success, failed, skipped, cancelled', () => {
    expect(TASK_STATES.filter(isTerminal).sort()).toEqual(['cancelled', 'failed', 'skipped', 'success']);
    expect([...TERMINAL_STATES].sort()).toEqual(TASK_STATES.filter(isTerminal).sort());
  });
});
