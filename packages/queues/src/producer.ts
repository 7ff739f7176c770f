import { parseInput } from '@deferrable/domain';
import { Queue, type JobsOptions } from 'bullmq';
import type { z } from 'zod';
import { assertValidJobId, type QueueSpec } from './catalog';
import { bullPrefix, producerConnection } from './redis';

/** Adds validated jobs to the queues of one spec (one BullMQ Queue per queue name, created lazily). */
export class Producer<S extends z.ZodType, K> {
  private readonly queues = new Map<string, Queue>();
  constructor(
    private readonly spec: QueueSpec<S, K>,
    private readonly redisUrl: string,
    private readonly prefix: string,
  ) {}

  queue(key: K): Queue {
    const name = this.spec.queueName(key);
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: producerConnection(this.redisUrl), prefix: bullPrefix(this.prefix) });
      // Errors surface on the add; an unhandled 'error' event would crash the process.
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  async add(key: K, payload: z.input<S>): Promise<void> {
    await this.addBulk(key, [payload]);
  }

  /** `extra` adds job options (such as a priority) to the spec's. */
  async addBulk(key: K, payloads: readonly z.input<S>[], extra: JobsOptions = {}): Promise<void> {
    if (payloads.length === 0) return;
    const jobs = payloads.map((p) => {
      const data = parseInput(this.spec.schema, p, `${this.spec.jobName} message`);
      const jobId = this.spec.jobId(data);
      if (jobId !== undefined) assertValidJobId(jobId);
      return { name: this.spec.jobName, data, opts: { ...this.spec.options, ...extra, ...(jobId === undefined ? {} : { jobId }) } };
    });
    await this.queue(key).addBulk(jobs);
  }

  /** BullMQ's state of a job, 'unknown' when Redis no longer has it. */
  async jobState(key: K, jobId: string): Promise<string> {
    return this.queue(key).getJobState(jobId);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.queues.clear();
  }
}
