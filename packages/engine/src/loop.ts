import type { Logger } from '@deferrable/logging';

/**
 * Runs `step` every `intervalMs`, or at once when woken (a LISTEN hint, a new event). Never runs
 * two steps at once; a wake during a step runs the next step right after it. A step may return
 * `{ againInMs }` to run again sooner than the interval (an object, not a bare number, so that a
 * step returning a count cannot be taken for a delay). A failing step is logged and
 * retried at the next tick, so a passing database outage does not stop the loop.
 */
const MIN_SOONER_MS = 5;

/** What a step may return: run again this soon (at most the interval). */
export interface LoopAgain {
  againInMs: number;
}

export class Loop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number | undefined> | null = null;
  private wakeRequested = false;
  private stopped = true;

  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly step: () => Promise<LoopAgain | void>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.wakeRequested = true;
      return;
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const running = this.tick();
      this.running = running;
      void running.then((soonerMs) => {
        this.running = null;
        if (this.stopped) return;
        if (this.wakeRequested) {
          this.wakeRequested = false;
          this.schedule(0);
        } else {
          // At least a few milliseconds: a step that keeps asking for 0 must not spin.
          this.schedule(soonerMs === undefined ? this.intervalMs : Math.min(this.intervalMs, Math.max(MIN_SOONER_MS, soonerMs)));
        }
      });
    }, ms);
  }

  private async tick(): Promise<number | undefined> {
    try {
      const ms = (await this.step())?.againInMs;
      return ms !== undefined && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
    } catch (err) {
      this.logger.error({ err, loop: this.name }, 'loop step failed; retrying at the next tick');
      return undefined;
    }
  }
}
