import type { Clock, ClockTimer, Trigger, TriggerRunContext } from '@deferrable/domain';

/**
 * One running trigger: its cancellation and its context. Kept small because a replica holds
 * 100,000 of them: the AbortSignal is created only if the trigger reads `ctx.signal` (Node
 * materialises it lazily, and it costs more than the rest together), and `sleep` cancels through
 * a field rather than an abort listener per wait.
 */
const SETTLED: Promise<void> = Promise.resolve();

export class RunningTrigger implements TriggerRunContext {
  readonly startedAt = Date.now();
  /** Settles when `run()` has ended; timer triggers have no run of their own. */
  done: Promise<void> = SETTLED;
  /** For a timer trigger held in the shared timer queue: when it is due, and the trigger. */
  at = Infinity;
  timer: Trigger | null = null;
  private readonly controller = new AbortController();
  private pending: { timer: ClockTimer; reject: (reason: unknown) => void } | null = null;
  private cancelledWith: unknown = undefined;
  cancelled = false;

  constructor(
    readonly triggerId: string,
    readonly type: string,
    readonly clock: Clock,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  sleep(ms: number): Promise<void> {
    if (this.cancelled) return Promise.reject(this.cancelledWith);
    return new Promise<void>((resolve, reject) => {
      const timer = this.clock.setTimer(ms, () => {
        this.pending = null;
        resolve();
      });
      this.pending = { timer, reject };
    });
  }

  cancel(reason: unknown): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.cancelledWith = reason;
    this.controller.abort(reason);
    const p = this.pending;
    this.pending = null;
    if (p) {
      p.timer.cancel();
      p.reject(reason);
    }
  }
}
