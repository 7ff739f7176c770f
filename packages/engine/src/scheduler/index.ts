import {
  EnqueueRequestSchema,
  HeartbeatLostError,
  parseInput,
  recordError,
  toDeferrableError,
  TriggerEventMessageSchema,
  TriggerFiredHintSchema,
} from '@deferrable/domain';
import {
  CHANNELS,
  deleteOrphanTriggers,
  dispatchDueWithin,
  dispatchIds,
  failRun,
  firedUnapplied,
  inTransaction,
  isTransientDbError,
  listen,
  lockStaleRuns,
  recordRejection,
  redispatch,
  resumeFromTriggers,
  retriesDue,
  staleQueued,
  timeoutDeferrals,
  type DispatchRow,
  type Listener,
} from '@deferrable/db';
import {
  bullPrefix,
  consumerConnection,
  NEW_WORK_PRIORITY,
  Producer,
  subscribeHints,
  taskDispatch,
  taskRequests,
  triggerEvents,
  triggerFiredChannel,
} from '@deferrable/queues';
import { enqueueTask, TaskCatalog } from '@deferrable/catalog';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Batcher } from '../batcher';
import { Loop } from '../loop';
import { ProcessJob } from '../process-job';
import type { Resources } from '../resources';
import { RecentIds } from '../recent-ids';
import { retryThroughOutage } from '../outage';
import { retryInMs } from '../retry';

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
  cleanupIntervalMs: number;
  eventConcurrency: number;
  heartbeatMs: number;
  maxPayloadBytes: number;
  /** Record requests for task types no worker has registered (with the system defaults). */
  allowUnregisteredTasks?: boolean;
}

/** Hinted events waiting to be applied beyond which new hints are dropped (their jobs follow). */
const MAX_HINTED_PENDING = 2000;

function groupByQueue(rows: readonly DispatchRow[]): Map<string, DispatchRow[]> {
  const groups = new Map<string, DispatchRow[]>();
  for (const r of rows) {
    const group = groups.get(r.queue);
    if (group) group.push(r);
    else groups.set(r.queue, [r]);
  }
  return groups;
}

// BullMQ states in which a dispatch job will still reach a worker.
const LIVE_JOB_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * Moves task instances that are not executing: applies trigger events (resume), dispatches
 * scheduled ones, fails timed-out deferrals, re-schedules due retries, reaps runs whose worker
 * died, re-dispatches what Redis lost, deletes orphan triggers and records task requests. Every
 * step is a compare-and-set or uses SKIP LOCKED, so several schedulers can run at once.
 */
export class Scheduler {
  readonly job: ProcessJob;
  private readonly actor: string;
  private readonly dispatches: Producer<typeof taskDispatch.schema, string>;
  private readonly dispatchLoop: Loop;
  private readonly maintenanceLoop: Loop;
  private readonly cleanupLoop: Loop;
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
  private readonly eventCounts = { appliedByHint: 0, jobsSettledWithoutStatement: 0, jobStatements: 0 };
  private readonly consumers: Worker[] = [];
  private readonly catalog: TaskCatalog;
  private listener: Listener | null = null;
  private firedHints: { close(): Promise<void> } | null = null;
  private stopping = false;
  /** How soon to look again while a queue is at its backlog mark (see dispatchAllDue). */
  private heldRetryMs = 50;

  constructor(
    private readonly res: Resources,
    private readonly opts: SchedulerOptions,
  ) {
    this.job = new ProcessJob(res, 'scheduler', { capacity: 0, queues: [], heartbeatMs: opts.heartbeatMs, load: () => 0 });
    this.actor = `scheduler:${this.job.id}`;
    this.catalog = new TaskCatalog(res.db.pool, { allowUnregistered: opts.allowUnregisteredTasks, maxPayloadBytes: opts.maxPayloadBytes });
    this.dispatches = new Producer(taskDispatch, res.redisUrl, res.prefix);
    this.dispatchLoop = new Loop('dispatch', opts.pollMs, () => this.dispatchAllDue(), res.logger);
    this.maintenanceLoop = new Loop('maintenance', opts.pollMs, () => this.maintain(), res.logger);
    this.cleanupLoop = new Loop('trigger-cleanup', opts.cleanupIntervalMs, () => this.cleanup(), res.logger);
    // One statement in flight per path: the next batch gathers meanwhile (hints arrive in bursts;
    // more statements in flight only made each smaller and the cycle dearer).
    this.hintedResumes = new Batcher((ids) => this.applyEvents(ids, { skipLocked: true }), 500, 1);
    this.jobResumes = new Batcher((ids) => this.applyEvents(ids, { skipLocked: false }), 500, 1);
  }

  async start(): Promise<void> {
    await this.job.start();
    const connection = consumerConnection(this.res.redisUrl);
    const prefix = bullPrefix(this.res.prefix);
    const events = new Worker(triggerEvents.queueName(), (job) => this.onTriggerEvent(job), {
      connection,
      prefix,
      concurrency: this.opts.eventConcurrency,
    });
    const requests = new Worker(taskRequests.queueName(), (job) => this.onTaskRequest(job), { connection, prefix, concurrency: 8 });
    for (const w of [events, requests]) {
      w.on('error', (err) => this.res.logger.error({ err, queue: w.name }, 'queue consumer error'));
      this.consumers.push(w);
    }
    // Fired hints carry the ids of triggers that just recorded their outcomes: applying them at
    // once spares a resume the wait for its job in the trigger-event queue (BullMQ hands a
    // consumer one job per round trip, so in a burst the jobs queue up in Redis).
    this.firedHints = subscribeHints(
      this.res.redisUrl,
      triggerFiredChannel(this.res.prefix),
      (message) => void this.onFiredHint(message),
      () => undefined,
    );
    this.listener = listen({
      url: this.res.databaseUrl,
      channels: [CHANNELS.taskScheduled],
      onNotify: () => this.dispatchLoop.wake(),
      onConnect: () => this.dispatchLoop.wake(),
      onError: (err) => this.res.logger.warn({ err }, 'LISTEN connection error; reconnecting'),
    });
    this.dispatchLoop.start();
    this.maintenanceLoop.start();
    this.cleanupLoop.start();
    this.res.logger.info({ schedulerId: this.job.id }, 'scheduler started');
  }

  status(): Record<string, unknown> {
    return { schedulerId: this.job.id, triggerEvents: { ...this.eventCounts } };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.firedHints?.close();
    await this.listener?.close();
    await Promise.all(this.consumers.map((w) => w.close()));
    // Events being applied (a hint's batch has no job waiting on it) commit and publish their
    // dispatches before the producer closes; what does not make it is re-dispatched later.
    const applied = Promise.all([this.hintedResumes.drain(), this.jobResumes.drain()]);
    await Promise.race([applied, new Promise<void>((resolve) => setTimeout(resolve, 5000).unref())]);
    await Promise.all([this.dispatchLoop.stop(), this.maintenanceLoop.stop(), this.cleanupLoop.stop()]);
    await this.job.stop();
    await this.dispatches.close();
    this.res.logger.info({ schedulerId: this.job.id }, 'scheduler stopped');
  }

  /** Publishes one dispatch job per row, grouped by task queue; resumed tasks jump the queue. */
  private async publish(rows: readonly DispatchRow[]): Promise<void> {
    const message = (r: DispatchRow) => ({ taskInstanceId: r.id, tryNumber: r.try_number, dispatchAttempt: r.dispatch_attempt });
    for (const [queue, group] of groupByQueue(rows)) {
      try {
        await this.dispatches.addBulk(queue, group.filter((r) => r.next_method !== null).map(message));
        await this.dispatches.addBulk(queue, group.filter((r) => r.next_method === null).map(message), { priority: NEW_WORK_PRIORITY });
      } catch (err) {
        // The rows stay queued in PostgreSQL; the re-dispatch scan publishes them again.
        this.res.logger.warn({ err, queue, count: group.length }, 'publishing dispatches failed');
      }
    }
  }

  /**
   * Dispatches what is due, batch by batch. While a served queue is at its backlog mark, asks to
   * look again soon (its workers drain it quickly): after 50 ms while dispatching keeps finding
   * room, backing off to the poll interval while it finds none (workers busy with long tasks).
   */
  private async dispatchAllDue(): Promise<number | undefined> {
    const limits = { ahead: this.opts.dispatchAhead, workersAliveWithinMs: this.opts.reapAfterMs };
    let dispatched = 0;
    let held = false;
    for (;;) {
      const batch = await dispatchDueWithin(this.res.db.pool, this.opts.dispatchBatch, this.actor, limits);
      await this.publish(batch.rows);
      dispatched += batch.rows.length;
      held = batch.held;
      if (batch.rows.length < this.opts.dispatchBatch) break;
    }
    const quick = Math.max(10, Math.min(50, this.opts.pollMs / 10));
    this.heldRetryMs = held && dispatched === 0 ? Math.min(this.opts.pollMs, this.heldRetryMs * 2) : quick;
    return held ? this.heldRetryMs : undefined;
  }

  private async dispatchNow(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.publish(await dispatchIds(this.res.db.pool, ids, this.actor));
  }

  private async onTriggerEvent(job: Job): Promise<void> {
    let triggerId: string;
    try {
      triggerId = parseInput(TriggerEventMessageSchema, job.data, 'job on trigger-events').triggerId;
    } catch (err) {
      await this.reject('queue:trigger-events', job, err);
      return;
    }
    if (this.applied.has(triggerId)) {
      this.eventCounts.jobsSettledWithoutStatement++;
      return;
    }
    // Its hint's statement may have applied it, or skipped it (another scheduler held the row,
    // and may yet roll back): only a statement that waits for the row settles it for certain.
    const hinted = this.hinted.get(triggerId);
    if (hinted && (await hinted.catch(() => false))) {
      this.eventCounts.jobsSettledWithoutStatement++;
      return;
    }
    this.eventCounts.jobStatements++;
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
      await this.refuse('hint:trigger-fired', null, err, message).catch((e: unknown) =>
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
            this.eventCounts.appliedByHint++;
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

  /**
   * Applies many trigger events and dispatches the resumed tasks in one statement (one round
   * trip and one commit on the resume path), then publishes their jobs. Resolves, per id, whether
   * this statement resumed its task.
   */
  private async applyEvents(triggerIds: string[], opts: { skipLocked: boolean }): Promise<boolean[]> {
    const resumed = await resumeFromTriggers(this.res.db.pool, [...new Set(triggerIds)], this.actor, { dispatch: true, skipLocked: opts.skipLocked });
    if (this.res.logger.isLevelEnabled('info')) {
      for (const r of resumed) this.res.logger.info({ taskInstanceId: r.id, triggerId: r.trigger_id, state: r.state }, 'task resumed');
    }
    await this.publish(resumed.flatMap((r) => (r.dispatch ? [r.dispatch] : [])));
    const done = new Set(resumed.map((r) => r.trigger_id));
    return triggerIds.map((id) => done.has(id));
  }

  private async onTaskRequest(job: Job): Promise<void> {
    let request;
    try {
      request = parseInput(EnqueueRequestSchema, job.data, 'task request');
    } catch (err) {
      await this.reject('queue:task-requests', job, err);
      return;
    }
    // Without a key of its own, a request is keyed by its job: a job handled twice (its consumer
    // killed after the insert committed, or the reply lost with the connection) records one task.
    const keyed = { ...request, idempotencyKey: request.idempotencyKey ?? `request:${job.id ?? '?'}:${job.timestamp}` };
    try {
      // The job is the only copy of the request: through an outage of any length it waits here,
      // holding its lock, rather than spend its attempts. When stopping it fails this attempt,
      // and BullMQ retries it if the producer gave it attempts (the SDK gives 10).
      const { id, created } = await retryThroughOutage(
        () => enqueueTask(this.res.db.pool, this.catalog, keyed, { actor: `request:${job.id ?? '?'}` }),
        {
          giveUp: () => this.stopping,
          onRetry: (err, attempt) => {
            if (attempt % 10 === 0) this.res.logger.warn({ err, jobId: job.id, attempt }, 'database unreachable; retrying the task request');
          },
          baseDelayMs: 200,
          maxDelayMs: 5000,
        },
      );
      this.res.logger.info({ taskInstanceId: id, created, task: request.task, jobId: job.id }, 'task request recorded');
    } catch (err) {
      // Refused input (a typed error that is not retryable) is recorded, not retried; any other
      // failure (a statement timeout, a full disk, an outage while stopping) is left to the job's attempts.
      const e = toDeferrableError(err);
      if (!isTransientDbError(err) && !e.retryable) return this.reject('queue:task-requests', job, e);
      throw err;
    }
  }

  /** Records refused input where a person will see it; the job fails without retry. */
  private async reject(source: string, job: Job, err: unknown): Promise<never> {
    throw new UnrecoverableError(await this.refuse(source, job.id ?? null, err, job.data));
  }

  /** Logs refused input and records it (the excerpt is bounded by recordRejection); the reason. */
  private async refuse(source: string, jobId: string | null, err: unknown, excerpt: unknown): Promise<string> {
    const reason = toDeferrableError(err).message;
    this.res.logger.warn({ source, jobId, reason }, 'rejected input');
    await recordRejection(this.res.db.pool, { source, jobId, reason, excerpt });
    return reason;
  }

  /** Periodic recovery and time-based transitions. */
  async maintain(): Promise<void> {
    const limit = this.opts.dispatchBatch;
    const timedOut = await timeoutDeferrals(this.res.db.pool, limit, this.actor);
    if (timedOut.length) this.res.logger.info({ count: timedOut.length }, 'deferrals timed out');
    await this.dispatchNow(timedOut);

    const retries = await retriesDue(this.res.db.pool, limit, this.actor);
    await this.dispatchNow(retries);

    await this.reap();

    // Trigger events whose message was lost (Redis emptied, triggerer killed after recording).
    const fired = await firedUnapplied(this.res.db.pool, Math.max(1000, this.opts.pollMs), limit);
    if (fired.length) {
      this.res.logger.info({ count: fired.length }, 'applying fired triggers found by the backstop scan');
      // Skips rows another statement holds: the scan comes round again next poll.
      await this.applyEvents(fired, { skipLocked: true });
    }

    await this.redispatchLost();
    await this.dispatchAllDue();
  }

  private async reap(): Promise<void> {
    const reaped = await inTransaction(this.res.db.pool, async (client) => {
      const rows = await lockStaleRuns(client, this.opts.reapAfterMs, this.opts.dispatchBatch);
      for (const r of rows) {
        const err = new HeartbeatLostError(r.worker_id);
        const retryIn = retryInMs(r, err, this.res.clock.now());
        await failRun(client, { id: r.id, tryNumber: r.try_number, workerId: r.worker_id ?? '', actor: this.actor }, recordError(err), retryIn);
        this.res.logger.warn({ taskInstanceId: r.id, try: r.try_number, workerId: r.worker_id, retry: retryIn !== null }, 'reaped a run whose worker stopped heartbeating');
      }
      return rows.length;
    });
    if (reaped) await this.dispatchNow(await retriesDue(this.res.db.pool, this.opts.dispatchBatch, this.actor));
  }

  private async redispatchLost(): Promise<void> {
    const stale = await staleQueued(this.res.db.pool, this.opts.redispatchAfterMs, this.opts.dispatchBatch);
    if (stale.length === 0) return;
    // Each long-queued task's own job is looked up, all at once (one round trip's wait for the
    // batch). A count of the queue's live jobs proves nothing: other tasks' jobs would hide a lost
    // one for as long as the queue stays busy.
    const states = await Promise.all(
      stale.map((row) => {
        const jobId = taskDispatch.jobId({ taskInstanceId: row.id, tryNumber: row.try_number, dispatchAttempt: row.dispatch_attempt })!;
        // A failed look-up is no evidence of a loss (Redis may be briefly away): skipped.
        return this.dispatches.jobState(row.queue, jobId).catch(() => null);
      }),
    );
    const lost = stale.filter((_, i) => {
      const state = states[i];
      return typeof state === 'string' && !LIVE_JOB_STATES.has(state);
    });
    const again: DispatchRow[] = [];
    for (const row of lost) {
      const next = await redispatch(this.res.db.pool, row, this.actor);
      if (next) again.push(next);
    }
    if (again.length) {
      this.res.logger.warn({ count: again.length }, 're-dispatching queued tasks whose jobs were lost');
      await this.publish(again);
    }
  }

  async cleanup(): Promise<void> {
    const deleted = await deleteOrphanTriggers(this.res.db.pool, 10_000);
    if (deleted.length) this.res.logger.info({ count: deleted.length }, 'deleted triggers no task waits on');
  }
}
