import type { Logger } from '@deferrable/logging';
import { Loop } from '../../loop';
import type { Resources } from '../../resources';
import type { Dispatcher } from '../dispatcher';
import { Reaper } from './reaper';
import { Redispatch } from './redispatch';
import { Retention, type RetentionOptions } from './retention';
import { Retries } from './retries';
import { Timeouts } from './timeouts';
import { TriggerCleanup } from './trigger-cleanup';

export interface MaintenanceOptions {
  /** How often the time-based transitions and recovery steps run. */
  pollMs: number;
  /** Most rows each step changes per run. */
  batch: number;
  reapAfterMs: number;
  redispatchAfterMs: number;
  /** Most long-queued rows whose job the re-dispatch scan looks up per pass. */
  redispatchChecksPerRun: number;
  cleanupIntervalMs: number;
  /** Retention of finished rows, run every `intervalMs` (and again soon while a run leaves more). */
  retention: RetentionOptions & { intervalMs: number };
  actor: string;
}

/**
 * Time-based transitions and recovery: one loop runs timeouts, retries, the reaper and the
 * re-dispatch scan in turn, then wakes the dispatcher (only its loop dispatches what is due, so
 * two dispatch steps never run at once in one process). Orphan-trigger cleanup and retention
 * have loops of their own (longer intervals).
 */
export class Maintenance {
  readonly timeouts: Timeouts;
  readonly retries: Retries;
  readonly reaper: Reaper;
  readonly redispatch: Redispatch;
  readonly triggerCleanup: TriggerCleanup;
  readonly retention: Retention;
  private readonly loop: Loop;
  private readonly cleanupLoop: Loop;
  private readonly retentionLoop: Loop;
  private readonly logger: Logger;

  constructor(
    res: Resources,
    opts: MaintenanceOptions,
    private readonly dispatcher: Pick<Dispatcher, 'dispatchNow' | 'wake' | 'publish' | 'jobState'>,
  ) {
    this.logger = res.logger;
    const { batch, actor } = opts;
    this.timeouts = new Timeouts(res, { batch, actor }, dispatcher);
    this.retries = new Retries(res, { batch, actor }, dispatcher);
    this.reaper = new Reaper(res, { reapAfterMs: opts.reapAfterMs, batch, actor }, this.retries);
    this.redispatch = new Redispatch(res, { redispatchAfterMs: opts.redispatchAfterMs, checksPerRun: opts.redispatchChecksPerRun, actor }, dispatcher);
    this.triggerCleanup = new TriggerCleanup(res, { batch: 10_000 });
    this.loop = new Loop('maintenance', opts.pollMs, () => this.runOnce(), res.logger);
    this.cleanupLoop = new Loop(
      'trigger-cleanup',
      opts.cleanupIntervalMs,
      async () => {
        await this.triggerCleanup.run();
      },
      res.logger,
    );
    this.retention = new Retention(res, opts.retention);
    // While rows remain beyond one run's share, the next run follows shortly (other work interleaves).
    this.retentionLoop = new Loop(
      'retention',
      opts.retention.intervalMs,
      async () => ((await this.retention.run()).more ? { againInMs: 100 } : undefined),
      res.logger,
    );
  }

  start(): void {
    this.loop.start();
    this.cleanupLoop.start();
    this.retentionLoop.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.loop.stop(), this.cleanupLoop.stop(), this.retentionLoop.stop()]);
  }

  /** One pass of the maintenance loop's steps; a failing step is logged and does not stop the others. */
  async runOnce(): Promise<void> {
    const steps: [string, { run(): Promise<unknown> }][] = [
      ['timeouts', this.timeouts],
      ['retries', this.retries],
      ['reaper', this.reaper],
      ['redispatch', this.redispatch],
    ];
    for (const [name, step] of steps) {
      await step.run().catch((err: unknown) => this.logger.error({ err, step: name }, 'maintenance step failed; retrying at the next tick'));
    }
    this.dispatcher.wake();
  }
}
