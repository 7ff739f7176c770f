import { firedUnapplied, resumeFromTriggers } from '@deferrable/db';
import { parseInput, TriggerEventMessageSchema, TriggerFiredHintSchema } from '@deferrable/domain';
import { bullPrefix, consumerConnection, subscribeHints, triggerEvents, triggerFiredChannel } from '@deferrable/queues';
import { Worker, type Job } from 'bullmq';
import { Batcher } from '../batcher';
import { Loop } from '../loop';
import { RecentIds } from '../recent-ids';
import type { Resources } from '../resources';
import type { Dispatcher } from './dispatcher';
import { refuse, rejectJob } from './reject';

export interface EventApplierOptions {
  /** Trigger-event jobs handled at once. */
  eventConcurrency: number;
  /** How often the backstop scan looks for fired triggers whose event was never applied. */
  pollMs: number;
  /** Most fired triggers the backstop scan applies per poll. */
  batch: number;
  actor: string;
}

/** Hinted events waiting to be applied beyond which new hints are dropped (their jobs follow). */
const MAX_HINTED_PENDING = 2000;

/**
 * Applies trigger events: deferred -> scheduled (resume) or the task's end, and dispatches the
 * resumed tasks in the same statement. Events arrive three ways: fired hints over Redis pub/sub
 * (fastest; every scheduler hears each), trigger-event jobs (one per fired trigger), and a
 * backstop scan of fired triggers whose message was lost. Each event is applied at most once:
 * the statement is a compare-and-set on the deferred state and trigger id.
 */
export class EventApplier {
  /** Events announced by fired hints: applied with SKIP LOCKED (every scheduler hears every hint). */
  private readonly hintedResumes: Batcher<string, boolean>;
  /** Events of trigger-event jobs not settled by a hint: applied waiting on row locks. */
  private readonly jobResumes: Batcher<string, boolean>;
  /** Trigger ids whose events are known applied: their jobs need no statement. */
  private readonly applied = new RecentIds(100_000);
  /** Hinted trigger ids being applied now; a job for one of them waits for that statement first. */
  private readonly hinted = new Map<string, Promise<boolean>>();
  /** Trigger ids whose jobs are being applied now (a hint for one of them adds nothing). */
  private readonly jobPending = new Set<string>();
  /** How trigger events were applied, for /status. */
  readonly counts = { appliedByHint: 0, jobsSettledWithoutStatement: 0, jobStatements: 0 };
  private readonly backstop: Loop;
  private consumer: Worker | null = null;
  private firedHints: { close(): Promise<void> } | null = null;

  constructor(
    private readonly res: Resources,
    private readonly opts: EventApplierOptions,
    private readonly dispatcher: Pick<Dispatcher, 'publish'>,
  ) {
    // One statement in flight per path: the next batch gathers meanwhile (hints arrive in bursts;
    // more statements in flight only made each smaller and the cycle dearer).
    this.hintedResumes = new Batcher((ids) => this.applyEvents(ids, { skipLocked: true }), 500, 1);
    this.jobResumes = new Batcher((ids) => this.applyEvents(ids, { skipLocked: false }), 500, 1);
    this.backstop = new Loop('fired-backstop', opts.pollMs, () => this.applyLostEvents(), res.logger);
  }

  start(): void {
    this.consumer = new Worker(triggerEvents.queueName(), (job) => this.onTriggerEvent(job), {
      connection: consumerConnection(this.res.redisUrl),
      prefix: bullPrefix(this.res.prefix),
      concurrency: this.opts.eventConcurrency,
    });
    this.consumer.on('error', (err) => this.res.logger.error({ err, queue: triggerEvents.queueName() }, 'queue consumer error'));
    // Fired hints carry the ids of triggers that just recorded their outcomes: applying them at
    // once spares a resume the wait for its job in the trigger-event queue (BullMQ hands a
    // consumer one job per round trip, so in a burst the jobs queue up in Redis).
    this.firedHints = subscribeHints(
      this.res.redisUrl,
      triggerFiredChannel(this.res.prefix),
      (message) => void this.onFiredHint(message),
      () => undefined,
    );
    this.backstop.start();
  }

  /** Stops taking events; events being applied commit and publish (up to 5 s) before it resolves. */
  async stop(): Promise<void> {
    await this.firedHints?.close();
    await this.consumer?.close();
    // A hint's batch has no job waiting on it: let it commit and publish its dispatches; what does
    // not make it is applied by the backstop scan or re-dispatched later.
    const applied = Promise.all([this.hintedResumes.drain(), this.jobResumes.drain()]);
    await Promise.race([applied, new Promise<void>((resolve) => setTimeout(resolve, 5000).unref())]);
    await this.backstop.stop();
  }

  private async onTriggerEvent(job: Job): Promise<void> {
    let triggerId: string;
    try {
      triggerId = parseInput(TriggerEventMessageSchema, job.data, 'job on trigger-events').triggerId;
    } catch (err) {
      await rejectJob(this.res, 'queue:trigger-events', job, err);
      return;
    }
    if (this.applied.has(triggerId)) {
      this.counts.jobsSettledWithoutStatement++;
      return;
    }
    // Its hint's statement may have applied it, or skipped it (another scheduler held the row,
    // and may yet roll back): only a statement that waits for the row settles it for certain.
    const hinted = this.hinted.get(triggerId);
    if (hinted && (await hinted.catch(() => false))) {
      this.counts.jobsSettledWithoutStatement++;
      return;
    }
    this.counts.jobStatements++;
    this.jobPending.add(triggerId);
    try {
      await this.jobResumes.add(triggerId);
      this.applied.add(triggerId);
    } finally {
      this.jobPending.delete(triggerId);
    }
  }

  private async onFiredHint(message: string): Promise<void> {
    let ids: string[];
    try {
      ids = parseInput(TriggerFiredHintSchema, message, 'trigger-fired hint');
    } catch (err) {
      // A hint has no job to fail; if the rejection cannot be recorded, the log line remains.
      await refuse(this.res, 'hint:trigger-fired', null, err, message).catch((e: unknown) =>
        this.res.logger.warn({ err: e }, 'could not record a rejected hint'),
      );
      return;
    }
    // Back-pressure: past this many hinted events waiting, hints are dropped; the jobs (and the
    // backstop scan) apply those events, only later.
    if (this.hintedResumes.pending > MAX_HINTED_PENDING) return;
    for (const id of ids) {
      if (this.applied.has(id) || this.hinted.has(id) || this.jobPending.has(id)) continue;
      const p = this.hintedResumes.add(id).then(
        (resumed) => {
          if (resumed) {
            this.applied.add(id);
            this.counts.appliedByHint++;
          }
          return resumed;
        },
        (err: unknown) => {
          this.res.logger.warn({ err, triggerId: id }, 'applying a hinted trigger event failed; its job applies it');
          return false;
        },
      );
      this.hinted.set(id, p);
      void p.finally(() => this.hinted.delete(id));
    }
  }

  /** Trigger events whose message was lost (Redis emptied, triggerer killed after recording). */
  private async applyLostEvents(): Promise<void> {
    const fired = await firedUnapplied(this.res.db.pool, Math.max(1000, this.opts.pollMs), this.opts.batch);
    if (fired.length === 0) return;
    this.res.logger.info({ count: fired.length }, 'applying fired triggers found by the backstop scan');
    // Skips rows another statement holds: the scan comes round again next poll.
    await this.applyEvents(fired, { skipLocked: true });
  }

  /**
   * Applies many trigger events and dispatches the resumed tasks in one statement (one round
   * trip and one commit on the resume path), then publishes their jobs. Resolves, per id, whether
   * this statement resumed its task.
   */
  private async applyEvents(triggerIds: string[], opts: { skipLocked: boolean }): Promise<boolean[]> {
    const resumed = await resumeFromTriggers(this.res.db.pool, [...new Set(triggerIds)], this.opts.actor, { dispatch: true, skipLocked: opts.skipLocked });
    if (this.res.logger.isLevelEnabled('info')) {
      for (const r of resumed) this.res.logger.info({ taskInstanceId: r.id, triggerId: r.trigger_id, state: r.state }, 'task resumed');
    }
    await this.dispatcher.publish(resumed.flatMap((r) => (r.dispatch ? [r.dispatch] : [])));
    const done = new Set(resumed.map((r) => r.trigger_id));
    return triggerIds.map((id) => done.has(id));
  }
}
