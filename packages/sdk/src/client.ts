import { randomUUID } from 'node:crypto';
import { cancelTask, createDb, type Db } from '@deferrable/db';
import { isTerminal, type EnqueueRequest, type Json, type RecordedError, type TaskState } from '@deferrable/domain';
import { Producer, taskRequests } from '@deferrable/queues';
import { enqueueWith } from './enqueue';

export interface TaskInstanceView {
  id: string;
  task: string;
  state: TaskState;
  tryNumber: number;
  maxTries: number;
  queue: string;
  result: Json | null;
  error: RecordedError | null;
  nextMethod: string | null;
  triggerId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
}

export interface DeferrableClientOptions {
  databaseUrl: string;
  /** Needed only for `request()` (the task-request queue). */
  redisUrl?: string;
  prefix?: string;
  /** Who is enqueuing, for the audit log. */
  actor?: string;
  maxPayloadBytes?: number;
}

export class TaskWaitTimeoutError extends Error {
  constructor(
    readonly taskInstanceId: string,
    readonly lastState: TaskState | null,
  ) {
    super(`task instance ${taskInstanceId} did not finish in time (last state: ${lastState ?? 'unknown'})`);
  }
}

/**
 * The typed client other services use: enqueue (idempotent with a key), read state and result,
 * wait for the end, cancel. Writes go straight to PostgreSQL, the state of record.
 */
export class DeferrableClient {
  private readonly db: Db;
  private requests: Producer<typeof taskRequests.schema, void> | null = null;
  private readonly actor: string;

  constructor(private readonly opts: DeferrableClientOptions) {
    this.db = createDb({ url: opts.databaseUrl, poolMax: 4, applicationName: 'deferrable-sdk' });
    this.actor = opts.actor ?? 'sdk';
  }

  async enqueue(request: EnqueueRequest): Promise<{ id: string; created: boolean }> {
    return enqueueWith(this.db.pool, request, { actor: this.actor, maxPayloadBytes: this.opts.maxPayloadBytes });
  }

  /**
   * Adds a request to the task-request queue instead (what a service without database access
   * does, from any language with a BullMQ client); the scheduler validates and records it.
   * Without an idempotency key the request gets a new one, so that the job, should it be added
   * twice (a command repeated after a reconnect), records one task.
   */
  async request(request: EnqueueRequest): Promise<void> {
    if (!this.opts.redisUrl) throw new Error('request() needs redisUrl');
    this.requests ??= new Producer(taskRequests, this.opts.redisUrl, this.opts.prefix ?? '{deferrable}');
    await this.requests.add(undefined, { ...request, idempotencyKey: request.idempotencyKey ?? `request:${randomUUID()}` });
  }

  async get(id: string): Promise<TaskInstanceView | null> {
    const t = await this.db.prisma.taskInstance.findUnique({ where: { id } });
    if (!t) return null;
    return {
      id: t.id,
      task: t.taskName,
      state: t.state as TaskState,
      tryNumber: t.tryNumber,
      maxTries: t.maxTries,
      queue: t.queue,
      result: (t.result ?? null) as Json | null,
      error: (t.error ?? null) as RecordedError | null,
      nextMethod: t.nextMethod,
      triggerId: t.triggerId,
      createdAt: t.createdAt,
      startedAt: t.startedAt,
      endedAt: t.endedAt,
    };
  }

  /** Polls until the task reaches a terminal state. */
  async waitFor(id: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<TaskInstanceView> {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    let last: TaskInstanceView | null = null;
    for (;;) {
      last = await this.get(id);
      if (last && isTerminal(last.state)) return last;
      if (Date.now() >= deadline) throw new TaskWaitTimeoutError(id, last?.state ?? null);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
    }
  }

  async cancel(id: string): Promise<boolean> {
    return cancelTask(this.db.pool, id, this.actor);
  }

  async close(): Promise<void> {
    await this.requests?.close();
    await this.db.close();
  }
}
