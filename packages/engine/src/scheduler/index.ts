import type { Resources } from '../resources';
import { ProcessJob } from '../process-job';
import { Dispatcher } from './dispatcher';
import { EventApplier } from './event-applier';
import { Maintenance } from './maintenance';
import { RequestIntake, type Enqueue } from './request-intake';

export type { Enqueue } from './request-intake';

/** Rows per retention statement: small enough that no statement holds many locks for long. */
const RETENTION_BATCH = 300;

export interface SchedulerOptions {
  pollMs: number;
  dispatchBatch: number;
  /**
   * Dispatch into a queue waits while it holds this many queued tasks (or twice its live workers'
   * slots, if more); the rest stay scheduled in PostgreSQL, in priority order.
   */
  dispatchAhead: number;
  /** A running task whose heartbeat is older than this is reaped (retried or failed). */
  reapAfterMs: number;
  /** A queued task whose job is missing from Redis for this long is dispatched again. */
  redispatchAfterMs: number;
  /** Most long-queued rows whose job is looked up in Redis per maintenance pass (default 100); the next pass goes on from there. */
  redispatchChecksPerPoll?: number;
  cleanupIntervalMs: number;
  /** Finished task instances (with their transitions) are deleted this long after they ended; 0 keeps them. */
  retentionMs: number;
  /** Job rows are deleted this long after they ended or last heartbeated; 0 keeps them. */
  jobRetentionMs: number;
  /** Rejections are deleted this long after they were recorded; 0 keeps them. */
  rejectionRetentionMs: number;
  /** How often retention runs. */
  retentionIntervalMs: number;
  eventConcurrency: number;
  heartbeatMs: number;
  /** Records a task request from the task-requests queue (checks it against the catalog, writes it). */
  enqueue: Enqueue;
}

/**
 * Moves task instances that are not executing, composed of one module per role: the dispatcher
 * (scheduled -> queued, dispatch jobs), the event applier (trigger events -> resume), request
 * intake (the task-requests queue) and maintenance (timeouts, retries, reaper, re-dispatch,
 * trigger cleanup, retention). Every step is a compare-and-set or uses SKIP LOCKED, so several schedulers
 * can run at once.
 */
export class Scheduler {
  readonly job: ProcessJob;
  private readonly dispatcher: Dispatcher;
  private readonly events: EventApplier;
  private readonly requests: RequestIntake;
  private readonly maintenance: Maintenance;

  constructor(
    private readonly res: Resources,
    opts: SchedulerOptions,
  ) {
    this.job = new ProcessJob(res, 'scheduler', { capacity: 0, queues: [], heartbeatMs: opts.heartbeatMs, load: () => 0 });
    const actor = `scheduler:${this.job.id}`;
    const batch = opts.dispatchBatch;
    this.dispatcher = new Dispatcher(res, {
      pollMs: opts.pollMs,
      dispatchBatch: batch,
      dispatchAhead: opts.dispatchAhead,
      workersAliveWithinMs: opts.reapAfterMs,
      actor,
    });
    this.events = new EventApplier(res, { eventConcurrency: opts.eventConcurrency, pollMs: opts.pollMs, batch, actor }, this.dispatcher);
    this.requests = new RequestIntake(res, { enqueue: opts.enqueue, concurrency: 8 });
    this.maintenance = new Maintenance(
      res,
      {
        pollMs: opts.pollMs,
        batch,
        reapAfterMs: opts.reapAfterMs,
        redispatchAfterMs: opts.redispatchAfterMs,
        redispatchChecksPerRun: opts.redispatchChecksPerPoll ?? 100,
        cleanupIntervalMs: opts.cleanupIntervalMs,
        retention: {
          taskRetentionMs: opts.retentionMs,
          jobRetentionMs: opts.jobRetentionMs,
          rejectionRetentionMs: opts.rejectionRetentionMs,
          intervalMs: opts.retentionIntervalMs,
          batch: RETENTION_BATCH,
          maxBatchesPerRun: 20,
        },
        actor,
      },
      this.dispatcher,
    );
  }

  async start(): Promise<void> {
    await this.job.start();
    this.events.start();
    this.requests.start();
    this.dispatcher.start();
    this.maintenance.start();
    this.res.logger.info({ schedulerId: this.job.id }, 'scheduler started');
  }

  status(): Record<string, unknown> {
    return { schedulerId: this.job.id, triggerEvents: { ...this.events.counts }, retentionDeleted: { ...this.maintenance.retention.deleted } };
  }

  async stop(): Promise<void> {
    // Consumers first (events being applied commit and publish their dispatches), then the loops;
    // the dispatch producer closes last. What does not make it is re-dispatched later.
    await Promise.all([this.requests.stop(), this.events.stop()]);
    await Promise.all([this.dispatcher.stop(), this.maintenance.stop()]);
    await this.job.stop();
    await this.dispatcher.close();
    this.res.logger.info({ schedulerId: this.job.id }, 'scheduler stopped');
  }
}
