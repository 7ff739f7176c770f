import { releaseTriggers } from '@deferrable/db';
import type { TriggerRegistry } from '@deferrable/triggers';
import { ProcessJob } from '../process-job';
import type { Resources } from '../resources';
import type { BlockDetector } from './block-detector';
import { TriggerClaimer } from './claimer';
import { OutcomeRecorder } from './outcome-recorder';
import { TriggerRunner } from './runner';
import { TriggerSyncer } from './syncer';

export { TriggerClaimer, type TriggerClaimerOptions } from './claimer';
export { OutcomeRecorder, type OutcomeRecorderOptions } from './outcome-recorder';
export { TriggerRunner, type TriggerRunnerOptions } from './runner';
export { TriggerSyncer, type TriggerSyncerOptions } from './syncer';

export interface TriggererOptions {
  triggers: TriggerRegistry;
  capacity: number;
  queues: string[];
  heartbeatMs: number;
  healthThresholdMs: number;
  claimIntervalMs: number;
  syncIntervalMs: number;
  /** A trigger callback that holds the event loop this long is named in the logs (0: off). */
  blockWarnMs: number;
  /** Most triggers claimed in one statement. */
  claimBatch?: number;
  /** How long a stop waits for cancelled triggers to end before it hands them back anyway. */
  shutdownGraceMs?: number;
  /** Largest event payload a trigger may fire, as JSON bytes (DEFERRABLE_MAX_PAYLOAD_BYTES). */
  maxPayloadBytes: number;
}

/**
 * A triggerer process: its job row and heartbeat, and the four systems that share its resources:
 * the claimer (claimer.ts) hands claimed triggers to the runner (runner.ts), which runs them and
 * hands each outcome to the recorder (outcome-recorder.ts); the syncer (syncer.ts) stops what is no
 * longer assigned here and hands back what is assigned but not running.
 */
export class Triggerer {
  readonly job: ProcessJob;
  private readonly recorder: OutcomeRecorder;
  private readonly runner: TriggerRunner;
  private readonly claimer: TriggerClaimer;
  private readonly syncer: TriggerSyncer;

  constructor(
    private readonly res: Resources,
    private readonly opts: TriggererOptions,
  ) {
    this.job = new ProcessJob(res, 'triggerer', {
      capacity: opts.capacity,
      queues: opts.queues,
      heartbeatMs: opts.heartbeatMs,
      load: () => this.runner.size,
    });
    this.recorder = new OutcomeRecorder(res);
    this.runner = new TriggerRunner(res, { triggers: opts.triggers, blockWarnMs: opts.blockWarnMs, maxPayloadBytes: opts.maxPayloadBytes }, this.recorder);
    this.claimer = new TriggerClaimer(res, opts, this.job.id, this.runner);
    this.syncer = new TriggerSyncer(res, opts, this.job.id, this.runner, this.recorder, this.claimer);
  }

  get triggererId(): string {
    return this.job.id;
  }

  get runningCount(): number {
    return this.runner.size;
  }

  get blocks(): BlockDetector {
    return this.runner.blocks;
  }

  status(): Record<string, unknown> {
    return {
      triggererId: this.triggererId,
      running: this.runner.size,
      capacity: this.opts.capacity,
      loopDelayMs: this.blocks.loopDelay(),
      blockedByType: Object.fromEntries(this.blocks.counts),
    };
  }

  runningIds(): string[] {
    return this.runner.ids();
  }

  async start(): Promise<void> {
    this.runner.start();
    await this.job.start();
    this.claimer.start();
    this.syncer.start();
    this.res.logger.info({ triggererId: this.triggererId, capacity: this.opts.capacity, queues: this.opts.queues }, 'triggerer started');
  }

  /** Stops every trigger (cleanup), records what already fired, hands the rest back, ends the job row. */
  async stop(): Promise<void> {
    this.recorder.stopRetrying();
    await this.claimer.stop();
    await this.syncer.stop();
    await this.runner.stop(this.opts.shutdownGraceMs ?? 10_000);
    await this.recorder.drain();
    const released = await releaseTriggers(this.res.db.pool, this.triggererId).catch((err: unknown) => {
      this.res.logger.error({ err }, 'could not release triggers');
      return 0;
    });
    await this.job.stop();
    await this.recorder.close();
    this.runner.close();
    this.res.logger.info({ triggererId: this.triggererId, released }, 'triggerer stopped');
  }
}
