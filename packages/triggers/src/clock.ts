import { setTimeout as delay } from 'node:timers/promises';
import type { Clock, ClockTimer } from '@deferrable/domain';

/** setTimeout cannot wait longer than 2^31-1 ms (it would fire at once). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A Node timer as a ClockTimer: one small object, no closure (a replica holds many). */
class NodeTimer implements ClockTimer {
  constructor(private readonly timeout: NodeJS.Timeout) {}

  cancel(): void {
    clearTimeout(this.timeout);
  }
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(Math.max(0, ms), undefined, signal ? { signal } : undefined),
  setTimer: (ms, fn) => new NodeTimer(setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMEOUT_MS))),
};
