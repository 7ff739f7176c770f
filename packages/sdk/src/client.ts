import { randomUUID } from 'node:crypto';
import { TaskCatalog, enqueueTask } from '@deferrable/catalog';
import { cancelTask, createDb, isTransientDbError, taskInstanceView, type Db, type TaskInstanceView } from '@deferrable/db';
import {
  DatabaseUnavailableError,
  InvalidInputError,
  InvalidTransitionError,
  isTerminal,
  TaskNotFoundError,
  type EnqueueRequest,
  type TaskState,
} from '@deferrable/domain';
import { Producer, taskRequests } from '@deferrable/queues';
import { z } from 'zod';

export type { TaskInstanceView } from '@deferrable/db';

export interface DeferrableClientOptions {
  databaseUrl: string;
  /** Needed only for `request()` (the task-request queue). */
  redisUrl?: string;
  prefix?: string;
  /** Who is enqueuing, for the audit log. */
  actor?: string;
  maxPayloadBytes?: number;
  /**
   * Enqueue task types that no worker has registered in the catalog (with the system defaults and
   * no argument check). Off by default: an unknown task name is refused.
   */
  allowUnregisteredTasks?: boolean;
  /**
   * How long `enqueue` keeps retrying through a database outage when the request has an
   * idempotency key (a retry of a write that did commit then finds the same task). Default 10 s;
   * 0 turns it off. Without a key, or past this, a DatabaseUnavailableError is thrown.
   */
  retryForMs?: number;
}

export class TaskWaitTimeoutError extends Error {
  constructor(
    readonly taskInstanceId: string,
    readonly lastState: TaskState | null,
  ) {
    super(`task instance ${taskInstanceId} did not finish in time (last state: ${lastState ?? 'unknown'})`);
  }
}

const TaskIdSchema = z.uuid();

/**
 * The typed client other services use: enqueue (checked against the task catalog; idempotent with
 * a key), read state and result, wait for the end, cancel. Writes go straight to PostgreSQL, the
 * state of record. Every failure is a typed DeferrableError; `DatabaseUnavailableError` is the
 * retryable one.
 */
export class DeferrableClient {
  private readonly db: Db;
  private readonly catalog: TaskCatalog;
  private requests: Producer<typeof taskRequests.schema, void> | null = null;
  private readonly actor: string;

  constructor(private readonly opts: DeferrableClientOptions) {
    this.db = createDb({ url: opts.databaseUrl, poolMax: 4, applicationName: 'deferrable-sdk' });
    this.catalog = new TaskCatalog(this.db.pool, { allowUnregistered: opts.allowUnregisteredTasks, maxPayloadBytes: opts.maxPayloadBytes });
    this.actor = opts.actor ?? 'sdk';
  }

  async enqueue(request: EnqueueRequest): Promise<{ id: string; created: boolean }> {
    const deadline = Date.now() + (request.idempotencyKey ? (this.opts.retryForMs ?? 10_000) : 0);
    for (let attempt = 0; ; attempt++) {
      try {
        return await enqueueTask(this.db.pool, this.catalog, request, { actor: this.actor });
      } catch (err) {
        if (!isTransientDbError(err)) throw err;
        if (Date.now() >= deadline) throw new DatabaseUnavailableError({ cause: err });
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  /**
   * Adds a request to the task-request queue instead (what a service without database access
   * does, from any language with a BullMQ client); the scheduler checks it against the catalog
   * again and records it, or records why it refused it. Checked here first when the database
   * answers, so that bad input fails at once. Without an idempotency key the request gets a new one, so that the job, should
   * it be added twice (a command repeated after a reconnect), records one task.
   */
  async request(request: EnqueueRequest): Promise<void> {
    if (!this.opts.redisUrl) throw new InvalidInputError('client options', [{ path: 'redisUrl', message: 'request() needs redisUrl' }]);
    // The queue path must outlast a database outage (the scheduler keeps the job until it can
    // record it): with the database away, the check is left to the scheduler.
    await this.catalog.check(request).catch((err: unknown) => {
      if (!isTransientDbError(err)) throw err;
    });
    this.requests ??= new Producer(taskRequests, this.opts.redisUrl, this.opts.prefix ?? '{deferrable}');
    await this.requests.add(undefined, { ...request, idempotencyKey: request.idempotencyKey ?? `request:${randomUUID()}` });
  }

  /** The task instance, or null when no task has this id. */
  async get(id: string): Promise<TaskInstanceView | null> {
    const taskId = this.taskId(id);
    const t = await this.read(() => this.db.prisma.taskInstance.findUnique({ where: { id: taskId } }));
    return t ? taskInstanceView(t) : null;
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

  /**
   * Any non-terminal state -> cancelled; returns the cancelled task. Throws TaskNotFoundError for
   * an unknown id, and InvalidTransitionError (naming the state) for a task that had already ended.
   */
  async cancel(id: string): Promise<TaskInstanceView> {
    const taskId = this.taskId(id);
    const cancelled = await this.read(() => cancelTask(this.db.pool, taskId, this.actor));
    const view = await this.get(taskId);
    if (!view) throw new TaskNotFoundError(taskId);
    if (!cancelled) throw new InvalidTransitionError('cancel', view.state, 'cancelled');
    return view;
  }

  async close(): Promise<void> {
    await this.requests?.close();
    await this.db.close();
  }

  private taskId(id: string): string {
    const parsed = TaskIdSchema.safeParse(id);
    if (!parsed.success) throw new InvalidInputError('task instance id', [{ path: 'id', message: `not a UUID: ${JSON.stringify(String(id).slice(0, 80))}` }]);
    return parsed.data;
  }

  /** Runs a read (or a compare-and-set) once; an unreachable database becomes DatabaseUnavailableError. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isTransientDbError(err)) throw new DatabaseUnavailableError({ cause: err });
      throw err;
    }
  }
}
