import { parseInput } from '@deferrable/domain';
import { Queue, type JobsOptions } from 'bullmq';
import type { z } from 'zod';
import { assertValidJobId, type QueueSpec } from './catalog';
import { bullPrefix, producerConnection } from './redis';

/** Queues a producer keeps open by default: each holds a Redis connection. */
const MAX_OPEN_QUEUES = 64;

interface OpenQueue {
  queue: Queue;
  /** Adds and look-ups in flight: an evicted queue closes once they are done. */
  inUse: number;
  evicted: boolean;
}

/**
 * Adds validated jobs to the queues of one spec. A BullMQ Queue (and its Redis connection) is
 * opened per queue name when first used; at most `maxOpen` stay open, the least recently used
 * is closed to make room, so input naming many queues cannot open connections without bound.
 */
export class Producer<S extends z.ZodType, K> {
  /** In least-recently-used order (a Map iterates in insertion order; a use re-inserts). */
  private readonly queues = new Map<string, OpenQueue>();
  /** Evicted queues still in use: closed when their last use ends (or by `close`). */
  private readonly evicted = new Set<OpenQueue>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly spec: QueueSpec<S, K>,
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly maxOpen = MAX_OPEN_QUEUES,
  ) {}

  /** Queues open now (at most `maxOpen`). */
  get openQueues(): number {
    return this.queues.size;
  }

  /** The BullMQ queue for `key` (for reads; it may be closed later to make room for others). */
  queue(key: K): Queue {
    return this.open(key).queue;
  }

  private open(key: K): OpenQueue {
    const name = this.spec.queueName(key);
    let q = this.queues.get(name);
    if (q) {
      this.queues.delete(name);
      this.queues.set(name, q);
      return q;
    }
    const queue = new Queue(name, { connection: producerConnection(this.redisUrl), prefix: bullPrefix(this.prefix) });
    // Errors surface on the add; an unhandled 'error' event would crash the process.
    queue.on('error', () => undefined);
    q = { queue, inUse: 0, evicted: false };
    this.queues.set(name, q);
    for (const [oldest, entry] of this.queues) {
      if (this.queues.size <= this.maxOpen) break;
      this.queues.delete(oldest);
      entry.evicted = true;
      if (entry.inUse === 0) this.closeQueue(entry);
      else this.evicted.add(entry);
    }
    return q;
  }

  private closeQueue(entry: OpenQueue): void {
    this.evicted.delete(entry);
    const closed = entry.queue.close().catch(() => undefined);
    this.closing.add(closed);
    void closed.finally(() => this.closing.delete(closed));
  }

  /** Runs `fn` on the queue for `key`, keeping it open meanwhile. */
  private async using<T>(key: K, fn: (queue: Queue) => Promise<T>): Promise<T> {
    const entry = this.open(key);
    entry.inUse++;
    try {
      return await fn(entry.queue);
    } finally {
      entry.inUse--;
      if (entry.evicted && entry.inUse === 0) this.closeQueue(entry);
    }
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
    await this.using(key, (q) => q.addBulk(jobs));
  }

  /** BullMQ's state of a job, 'unknown' when Redis no longer has it. */
  async jobState(key: K, jobId: string): Promise<string> {
    return this.using(key, (q) => q.getJobState(jobId));
  }

  async close(): Promise<void> {
    const open = [...this.queues.values(), ...this.evicted];
    this.queues.clear();
    this.evicted.clear();
    await Promise.all([...open.map((q) => q.queue.close().catch(() => undefined)), ...this.closing]);
  }
}
