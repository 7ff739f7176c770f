import { isTransientDbError } from '@deferrable/db';
import { EnqueueRequestSchema, parseInput, toDeferrableError, type EnqueueRequest } from '@deferrable/domain';
import { bullPrefix, consumerConnection, taskRequests } from '@deferrable/queues';
import { Worker, type Job } from 'bullmq';
import { retryThroughOutage } from '../outage';
import type { Resources } from '../resources';
import { rejectJob } from './reject';

/**
 * Records one task request: checks it and writes its task instance (or finds the one its
 * idempotency key already names). A refusal is a typed error that is not retryable.
 */
export type Enqueue = (request: EnqueueRequest, opts: { actor: string }) => Promise<{ id: string; created: boolean }>;

export interface RequestIntakeOptions {
  enqueue: Enqueue;
  /** Task-request jobs handled at once. */
  concurrency: number;
}

/**
 * Consumes the task-requests queue (other services, in any language with a BullMQ client, add a
 * job) and records each request as a task instance. Refused input is recorded as a rejection and
 * its job fails without retry.
 */
export class RequestIntake {
  private consumer: Worker | null = null;
  private stopping = false;

  constructor(
    private readonly res: Resources,
    private readonly opts: RequestIntakeOptions,
  ) {}

  start(): void {
    this.stopping = false;
    this.consumer = new Worker(taskRequests.queueName(), (job) => this.onTaskRequest(job), {
      connection: consumerConnection(this.res.redisUrl),
      prefix: bullPrefix(this.res.prefix),
      concurrency: this.opts.concurrency,
    });
    this.consumer.on('error', (err) => this.res.logger.error({ err, queue: taskRequests.queueName() }, 'queue consumer error'));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer?.close();
  }

  private async onTaskRequest(job: Job): Promise<void> {
    let request;
    try {
      request = parseInput(EnqueueRequestSchema, job.data, 'task request');
    } catch (err) {
      await rejectJob(this.res, 'queue:task-requests', job, err);
      return;
    }
    // Without a key of its own, a request is keyed by its job: a job handled twice (its consumer
    // killed after the insert committed, or the reply lost with the connection) records one task.
    const keyed = { ...request, idempotencyKey: request.idempotencyKey ?? `request:${job.id ?? '?'}:${job.timestamp}` };
    try {
      // The job is the only copy of the request: through an outage of any length it waits here,
      // holding its lock, rather than spend its attempts. When stopping it fails this attempt,
      // and BullMQ retries it if the producer gave it attempts (the SDK gives 10).
      const { id, created } = await retryThroughOutage(() => this.opts.enqueue(keyed, { actor: `request:${job.id ?? '?'}` }), {
        giveUp: () => this.stopping,
        onRetry: (err, attempt) => {
          if (attempt % 10 === 0) this.res.logger.warn({ err, jobId: job.id, attempt }, 'database unreachable; retrying the task request');
        },
        baseDelayMs: 200,
        maxDelayMs: 5000,
      });
      this.res.logger.info({ taskInstanceId: id, created, task: request.task, jobId: job.id }, 'task request recorded');
    } catch (err) {
      // Refused input (a typed error that is not retryable) is recorded, not retried; any other
      // failure (a statement timeout, a full disk, an outage while stopping) is left to the job's attempts.
      const e = toDeferrableError(err);
      if (!isTransientDbError(err) && !e.retryable) return rejectJob(this.res, 'queue:task-requests', job, e);
      throw err;
    }
  }
}
