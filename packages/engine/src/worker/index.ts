import { randomUUID } from 'node:crypto';
import {
  assertJsonSize,
  parseInput,
  recordError,
  toDeferrableError,
  TaskDispatchMessageSchema,
  type DeferOptions,
  type TaskDispatchMessage,
} from '@deferrable/domain';
import {
  deferRuns,
  failRun,
  heartbeatRuns,
  recordRejection,
  startRuns,
  succeedRuns,
  type Deferral,
  type DeferKey,
  type RunKey,
  type StartKey,
  type TaskInstanceRow,
} from '@deferrable/db';
import { consumerConnection, bullPrefix, HintPublisher, taskDispatch, triggerCreatedChannel } from '@deferrable/queues';
import type { TriggerRegistry } from '@deferrable/triggers';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Batcher } from '../batcher';
import { Loop } from '../loop';
import { ProcessJob } from '../process-job';
import type { Resources } from '../resources';
import type { TaskRegistry } from '../task-registry';
import { retryThroughOutage } from '../outage';
import { retryInMs } from '../retry';
import { runTaskCode, type RunOutcome } from './execute';
import { publishTaskTypes } from '@deferrable/catalog';

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

interface ActiveRun {
  tryNumber: number;
  startedAt: number;
  abort: AbortController;
  /** Its code has finished and its outcome is being recorded: the heartbeat leaves it alone. */
  settling: boolean;
}

/**
 * Consumes task dispatches. A run starts only by a compare-and-set (queued -> running for the
 * expected try and dispatch attempt); a deferral writes the trigger and the deferred state in one
 * statement and returns the slot to BullMQ at once.
 */
export class TaskWorker {
  readonly job: ProcessJob;
  private readonly consumers: Worker[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private readonly heartbeat: Loop;
  private readonly actor: string;
  private readonly hints: HintPublisher;
  // The steps of all slots are recorded together: one statement (and one commit) for every start,
  // deferral or success that is ready at the same moment, instead of one per task. While one
  // batch commits the next one gathers, so batches grow with the load and add no wait when idle.
  private readonly starts: Batcher<StartKey, TaskInstanceRow | null>;
  private readonly deferrals: Batcher<{ key: DeferKey; deferral: Deferral }, boolean>;
  private readonly successes: Batcher<{ key: RunKey; result: unknown }, boolean>;
  private stopping = false;

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
    this.hints = new HintPublisher(res.redisUrl, triggerCreatedChannel(res.prefix));
    const pool = res.db.pool;
    this.starts = new Batcher((keys) => startRuns(pool, keys), 1000, 1, true);
    this.deferrals = new Batcher((runs) => deferRuns(pool, runs), 1000, 1, true);
    this.successes = new Batcher((runs) => succeedRuns(pool, runs), 1000, 1, true);
    this.heartbeat = new Loop('worker-run-heartbeat', opts.heartbeatMs, () => this.heartbeatRuns(), res.logger);
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
    this.stopping = true;
    const grace = new Promise<void>((resolve) => setTimeout(resolve, this.opts.shutdownGraceMs).unref());
    // Let the runs in progress finish within the grace period; what is left is reaped later.
    await Promise.race([Promise.all(this.consumers.map((w) => w.close())), grace]);
    for (const run of this.active.values()) run.abort.abort(new Error('worker shutting down'));
    await Promise.all(this.consumers.map((w) => w.close(true).catch(() => undefined)));
    // Outcomes still being recorded in batches reach PostgreSQL before its pool closes.
    const recorded = Promise.all([this.starts.drain(), this.deferrals.drain(), this.successes.drain()]);
    await Promise.race([recorded, new Promise<void>((resolve) => setTimeout(resolve, this.opts.shutdownGraceMs).unref())]);
    await this.heartbeat.stop();
    await this.hints.close();
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
    const key = { id: msg.taskInstanceId, tryNumber: msg.tryNumber, dispatchAttempt: msg.dispatchAttempt, workerId: this.workerId, actor: this.actor };
    const row = await this.untilRecorded('start', key, () => this.starts.add(key));
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
          await this.recordDeferral(key, outcome.deferral.options, log);
          return;
        } catch (err) {
          outcome = { kind: 'error', error: err };
        }
      }
      if (outcome.kind === 'success') {
        try {
          assertJsonSize(outcome.result ?? null, this.opts.maxPayloadBytes, 'task result');
          const result = outcome.result ?? null;
          const ok = await this.untilRecorded('success', key, () => this.successes.add({ key, result }));
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

  private async recordDeferral(key: DeferKey, d: DeferOptions, log: typeof this.res.logger): Promise<void> {
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
    const ok = await this.untilRecorded('deferral', key, () => this.deferrals.add({ key, deferral }));
    if (ok) this.hints.publish(serialized.queue ?? 'default');
    log.info({ triggerId, triggerType: serialized.type, method: d.method, recorded: ok }, ok ? 'task deferred; slot freed' : 'deferral not recorded: run was no longer ours');
  }

  private async recordFailure(row: TaskInstanceRow, key: RunKey, error: unknown, log: typeof this.res.logger): Promise<void> {
    const err = toDeferrableError(error);
    const retryIn = retryInMs(row, err, this.res.clock.now());
    const ok = await this.untilRecorded('failure', key, () => failRun(this.res.db.pool, key, recordError(err), retryIn));
    log.warn(
      { err: { code: err.code, message: err.message }, retryInMs: retryIn, recorded: ok },
      retryIn !== null ? 'task failed; will retry' : 'task failed',
    );
  }

  /**
   * Sends a write that records a run's step until it lands. Through a database outage (a restart,
   * a failover) it keeps trying, and the run stays in hand: it is heartbeated again once the
   * database is back, so the outage neither fails the task nor hands its try to the reaper.
   * Without this, a deferral cut off by a restart became a task error, and the run, no longer
   * heartbeated, was reaped as if its worker had died. Errors about the write itself are not
   * retried. Every write here is a compare-and-set: one that did commit before its connection was
   * cut matches nothing the second time (the run reads as no longer ours, and the state is right;
   * a deferral names its dispatch attempt, so it cannot match the run a resume started since).
   * One case costs a try: a start that committed but whose answer was lost reads as stale; the
   * run, not heartbeated, is then reaped and retried.
   * Once the worker is stopping it gives up after a few tries; the reaper then takes the run back.
   */
  private untilRecorded<T>(step: string, run: { id: string; tryNumber: number }, write: () => Promise<T>): Promise<T> {
    return retryThroughOutage(write, {
      giveUp: (attempt) => this.stopping && attempt >= 4,
      onRetry: (err, attempt) => {
        if (attempt % 10 === 0) this.res.logger.warn({ err, taskInstanceId: run.id, try: run.tryNumber, step, attempt }, 'database unreachable; retrying the write');
      },
      baseDelayMs: 50,
      maxDelayMs: 2000,
    });
  }

  /** Heartbeats every run; a run the database no longer gives this worker (reaped, cancelled) is aborted. */
  private async heartbeatRuns(): Promise<void> {
    const issuedAt = Date.now();
    const held = new Set((await heartbeatRuns(this.res.db.pool, this.workerId, [...this.active.keys()])).map((r) => `${r.id}:${r.try_number}`));
    for (const [id, run] of this.active) {
      if (run.startedAt < issuedAt && !run.settling && !held.has(`${id}:${run.tryNumber}`) && !run.abort.signal.aborted) {
        this.res.logger.warn({ taskInstanceId: id, try: run.tryNumber }, 'run is no longer held by this worker; aborting it');
        run.abort.abort(new Error('run no longer held by this worker'));
      }
    }
  }
}
