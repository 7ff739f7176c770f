import { randomUUID } from 'node:crypto';
import {
  assertJsonSize,
  parseDeferOptions,
  parseInput,
  recordError,
  toDeferrableError,
  TaskDispatchMessageSchema,
  type DeferOptions,
  type TaskDispatchMessage,
} from '@deferrable/domain';
import { recordRejection, type Deferral, type DeferKey, type RunKey, type TaskInstanceRow } from '@deferrable/db';
import { consumerConnection, bullPrefix, taskDispatch } from '@deferrable/queues';
import type { TriggerRegistry } from '@deferrable/triggers';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { ProcessJob } from '../process-job';
import type { Resources } from '../resources';
import type { TaskRegistry } from '../task-registry';
import { retryInMs } from '../retry';
import { runTaskCode, type RunOutcome } from './execute';
import { publishTaskTypes } from '@deferrable/catalog';
import { RunHeartbeat, type ActiveRun } from './run-heartbeat';
import { StepRecorder } from './step-recorder';

export interface TaskWorkerOptions {
  tasks: TaskRegistry;
  triggers: TriggerRegistry;
  /** Concurrent runs per task queue. */
  slots: number;
  queues: string[];
  heartbeatMs: number;
  maxPayloadBytes: number;
  shutdownGraceMs: number;
}

/**
 * Consumes task dispatches. A run starts only by a compare-and-set (queued -> running for the
 * expected try and dispatch attempt); a deferral writes the trigger and the deferred state in one
 * statement and returns the slot to BullMQ at once. The steps are written by the StepRecorder;
 * the runs in hand are heartbeated by the RunHeartbeat.
 */
export class TaskWorker {
  readonly job: ProcessJob;
  private readonly consumers: Worker[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private readonly heartbeat: RunHeartbeat;
  private readonly steps: StepRecorder;
  private readonly actor: string;

  constructor(
    private readonly res: Resources,
    private readonly opts: TaskWorkerOptions,
  ) {
    this.job = new ProcessJob(res, 'worker', {
      capacity: opts.slots * opts.queues.length,
      queues: opts.queues,
      heartbeatMs: opts.heartbeatMs,
      load: () => this.active.size,
    });
    this.actor = `worker:${this.job.id}`;
    this.steps = new StepRecorder(res);
    this.heartbeat = new RunHeartbeat(res, this.job.id, this.active, opts.heartbeatMs);
  }

  get workerId(): string {
    return this.job.id;
  }

  get activeRuns(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    await this.job.start();
    await this.publishTaskTypes();
    for (const queue of this.opts.queues) {
      const worker = new Worker(taskDispatch.queueName(queue), (job) => this.process(job, queue), {
        connection: consumerConnection(this.res.redisUrl),
        prefix: bullPrefix(this.res.prefix),
        concurrency: this.opts.slots,
        // The state of record is PostgreSQL: a stalled job is just a stale notification.
        maxStalledCount: 1,
      });
      worker.on('error', (err) => this.res.logger.error({ err, queue }, 'task queue consumer error'));
      this.consumers.push(worker);
    }
    this.heartbeat.start();
    this.res.logger.info({ workerId: this.workerId, queues: this.opts.queues, slots: this.opts.slots }, 'worker started');
  }

  /**
   * Publishes the loaded task types to the catalog, which every entry checks requests against.
   * Says when another live worker runs a different definition under a name, or when a type's
   * queues are not among those this worker serves.
   */
  private async publishTaskTypes(): Promise<void> {
    const types = this.opts.tasks.all();
    const conflicts = await publishTaskTypes(this.res.db.pool, this.workerId, types, { aliveWithinMs: this.opts.heartbeatMs * 3 });
    for (const c of conflicts) {
      this.res.logger.warn({ task: c.name, definitions: c.hashes.length, jobIds: c.jobIds }, 'live workers run different definitions of this task type');
    }
    for (const t of types) {
      const queues = [t.queue ?? 'default', ...(t.queues ?? [])].filter((q) => !this.opts.queues.includes(q));
      if (queues.length) this.res.logger.warn({ task: t.name, queues }, 'this worker does not serve every queue of a task type it loads');
    }
    this.res.logger.info({ count: types.length }, 'task types published to the catalog');
  }

  async stop(): Promise<void> {
    this.steps.beginStopping();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, this.opts.shutdownGraceMs).unref());
    // Let the runs in progress finish within the grace period; what is left is reaped later.
    await Promise.race([Promise.all(this.consumers.map((w) => w.close())), grace]);
    for (const run of this.active.values()) run.abort.abort(new Error('worker shutting down'));
    await Promise.all(this.consumers.map((w) => w.close(true).catch(() => undefined)));
    // Outcomes still being recorded in batches reach PostgreSQL before its pool closes.
    await this.steps.close(this.opts.shutdownGraceMs);
    await this.heartbeat.stop();
    await this.job.stop();
    this.res.logger.info({ workerId: this.workerId }, 'worker stopped');
  }

  private async process(job: Job, queue: string): Promise<void> {
    let msg: TaskDispatchMessage;
    try {
      msg = parseInput(TaskDispatchMessageSchema, job.data, `job on ${taskDispatch.queueName(queue)}`);
    } catch (err) {
      const reason = toDeferrableError(err).message;
      await recordRejection(this.res.db.pool, {
        source: `queue:${taskDispatch.queueName(queue)}`,
        jobId: job.id ?? null,
        reason,
        excerpt: job.data,
      });
      this.res.logger.warn({ jobId: job.id, queue, reason }, 'rejected malformed task job');
      throw new UnrecoverableError(reason);
    }
    const row = await this.steps.start({
      id: msg.taskInstanceId,
      tryNumber: msg.tryNumber,
      dispatchAttempt: msg.dispatchAttempt,
      workerId: this.workerId,
      actor: this.actor,
    });
    if (!row) {
      this.res.logger.debug({ taskInstanceId: msg.taskInstanceId, try: msg.tryNumber }, 'stale dispatch ignored');
      return;
    }
    await this.run(row);
  }

  private async run(row: TaskInstanceRow): Promise<void> {
    const log = this.res.logger.child({ taskInstanceId: row.id, try: row.try_number, task: row.task_name });
    const abort = new AbortController();
    const run: ActiveRun = { tryNumber: row.try_number, startedAt: Date.now(), abort, settling: false };
    // An earlier try of this task still in hand here was taken back by the reaper (this try's
    // start matched, so the row moved on): it is no longer ours.
    this.active.get(row.id)?.abort.abort(new Error('run no longer held by this worker'));
    this.active.set(row.id, run);
    const key: DeferKey = { id: row.id, tryNumber: row.try_number, dispatchAttempt: row.dispatch_attempt, workerId: this.workerId, actor: this.actor };
    try {
      log.info({ method: row.next_method ?? 'execute' }, 'task running');
      let outcome: RunOutcome;
      try {
        const type = this.opts.tasks.get(row.task_name);
        outcome = await runTaskCode({ row, type, clock: this.res.clock, signal: abort.signal, abort: (r) => abort.abort(r) });
      } catch (err) {
        outcome = { kind: 'error', error: err };
      }
      run.settling = true;
      if (outcome.kind === 'deferred') {
        try {
          await this.recordDeferral(row, key, outcome.deferral.options, log);
          return;
        } catch (err) {
          outcome = { kind: 'error', error: err };
        }
      }
      if (outcome.kind === 'success') {
        try {
          assertJsonSize(outcome.result ?? null, this.opts.maxPayloadBytes, 'task result');
          const ok = await this.steps.succeed(key, outcome.result ?? null);
          log.info({ recorded: ok }, ok ? 'task succeeded' : 'task finished, but its run was no longer ours');
          return;
        } catch (err) {
          outcome = { kind: 'error', error: err };
        }
      }
      await this.recordFailure(row, key, outcome.error, log);
    } finally {
      // Only this try's own entry: a later try of the same task may have taken the slot in the map.
      if (this.active.get(row.id) === run) this.active.delete(row.id);
    }
  }

  private async recordDeferral(row: TaskInstanceRow, key: DeferKey, options: DeferOptions, log: typeof this.res.logger): Promise<void> {
    const d = parseDeferOptions(this.opts.tasks.get(row.task_name), options);
    const serialized = d.trigger.serialize();
    this.opts.triggers.validate(serialized);
    assertJsonSize(serialized.kwargs, this.opts.maxPayloadBytes, 'trigger kwargs');
    assertJsonSize(d.kwargs ?? {}, this.opts.maxPayloadBytes, 'deferral kwargs');
    const triggerId = randomUUID();
    const deferral: Deferral = {
      trigger: {
        id: triggerId,
        classpath: serialized.type,
        kwargsToken: this.res.cipher.encrypt(serialized.kwargs),
        queue: serialized.queue ?? null,
      },
      nextMethod: d.method,
      nextKwargs: { kwargs: d.kwargs ?? {} },
      timeoutMs: d.timeoutMs ?? null,
    };
    const ok = await this.steps.defer(key, deferral);
    log.info(
      { triggerId, triggerType: serialized.type, method: d.method, recorded: ok },
      ok ? 'task deferred; slot freed' : 'deferral not recorded: run was no longer ours',
    );
  }

  private async recordFailure(row: TaskInstanceRow, key: RunKey, error: unknown, log: typeof this.res.logger): Promise<void> {
    const err = toDeferrableError(error);
    const retryIn = retryInMs(row, err, this.res.clock.now());
    const recorded = recordError(err);
    const ok = await this.steps.fail(key, recorded, retryIn);
    log.warn(
      { err: { type: recorded.type, code: recorded.code, message: recorded.message, stack: recorded.stack }, retryInMs: retryIn, recorded: ok },
      retryIn !== null ? 'task failed; will retry' : 'task failed',
    );
  }
}
