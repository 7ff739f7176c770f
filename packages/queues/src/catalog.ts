import {
  EnqueueRequestSchema,
  TaskDispatchMessageSchema,
  TriggerEventMessageSchema,
  type TaskDispatchMessage,
  type TriggerEventMessage,
} from '@deferrable/domain';
import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';

/**
 * The one catalog of queues: name, job name, payload schema, job-id rule, attempts and retention.
 * Payloads are validated when added and again when read. A queue message is a notification with an
 * id; PostgreSQL holds the fact, so any job may be lost or repeated without harm.
 */
export interface QueueSpec<S extends z.ZodType, K> {
  /** BullMQ queue name (no ':' allowed). */
  queueName(key: K): string;
  jobName: string;
  schema: S;
  jobId(payload: z.output<S>): string | undefined;
  options: JobsOptions;
}

// Kept for Bull Board and debugging, bounded so Redis does not grow without limit.
const RETENTION: Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> = {
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 5000 },
};

export const taskDispatch: QueueSpec<typeof TaskDispatchMessageSchema, string> = {
  queueName: (taskQueue) => `tasks.${taskQueue}`,
  jobName: 'dispatch',
  schema: TaskDispatchMessageSchema,
  // Deterministic: a repeat add of the same dispatch is a no-op while the job exists.
  jobId: (m: TaskDispatchMessage) => `${m.taskInstanceId}_${m.tryNumber}_${m.dispatchAttempt}`,
  // Retries live in PostgreSQL (the task's policy); the job itself is never retried.
  options: { attempts: 1, ...RETENTION },
};

/**
 * BullMQ takes jobs without a priority before prioritized ones. A resumed task (its callback)
 * goes without one, so it overtakes a backlog of new executes; new work is prioritized.
 */
export const NEW_WORK_PRIORITY = 10;

export const triggerEvents: QueueSpec<typeof TriggerEventMessageSchema, void> = {
  queueName: () => 'trigger-events',
  jobName: 'trigger-event',
  schema: TriggerEventMessageSchema,
  jobId: (m: TriggerEventMessage) => m.triggerId,
  // Applying an event only fails when PostgreSQL is unreachable: retry with backoff.
  options: { attempts: 10, backoff: { type: 'exponential', delay: 200 }, ...RETENTION },
};

export const taskRequests: QueueSpec<typeof EnqueueRequestSchema, void> = {
  queueName: () => 'task-requests',
  jobName: 'task-request',
  schema: EnqueueRequestSchema,
  jobId: () => undefined,
  options: { attempts: 10, backoff: { type: 'exponential', delay: 200 }, ...RETENTION },
};

/** Job ids must not be integers or contain ':' in BullMQ. */
export function assertValidJobId(id: string): void {
  if (id.includes(':') || /^\d+$/.test(id)) throw new Error(`invalid BullMQ job id ${id}`);
}
