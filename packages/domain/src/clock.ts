/** A timer started by a clock; cancelling it after it ran does nothing. */
export interface ClockTimer {
  cancel(): void;
}

/** Time is handed in, never read from a global, so that tests can drive it. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` once, `ms` from now by this clock, unless cancelled first. The one way the runner
   * waits (the shared timer queue, a trigger's sleep), so a fake clock drives the same code path
   * as production.
   */
  setTimer(ms: number, fn: () => void): ClockTimer;
}
