import { z } from 'zod';
import { JsonSchema, StorableString } from './json';
import { RetryOverrideSchema } from './retry';

/** Notification to workers: run this try of this task instance (dispatch attempt n). */
export const TaskDispatchMessageSchema = z.object({
  taskInstanceId: z.uuid(),
  tryNumber: z.number().int().min(1),
  dispatchAttempt: z.number().int().min(1),
});
export type TaskDispatchMessage = z.infer<typeof TaskDispatchMessageSchema>;

/** Notification to the scheduler: this trigger has recorded an outcome. */
export const TriggerEventMessageSchema = z.object({ triggerId: z.uuid() });
export type TriggerEventMessage = z.infer<typeof TriggerEventMessageSchema>;

/** Most trigger ids in one fired hint; the triggerer splits bigger batches. */
export const MAX_FIRED_HINT_IDS = 500;

/**
 * Wake-up hint to schedulers over Redis pub/sub: these triggers have just recorded their outcomes
 * (comma-separated ids). A hint is never the only notice: each trigger also has its event job.
 */
export const TriggerFiredHintSchema = z
  .string()
  .max(MAX_FIRED_HINT_IDS * 37)
  .transform((s) => s.split(','))
  .pipe(z.array(z.uuid()).min(1).max(MAX_FIRED_HINT_IDS));

/** A task type's name, as registered and as requests name it. */
export const TaskNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');
/** A task queue's name (part of a BullMQ queue name: no ':'). */
export const QueueNameSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits and _ . - only');
/** A task's priority: higher runs first. */
export const PrioritySchema = z.number().int().min(-1000).max(1000);
/** A task's execution timeout, in ms (at most 7 days). */
export const ExecutionTimeoutSchema = z
  .number()
  .int()
  .min(1)
  .max(7 * 24 * 3600 * 1000);

/** A request to run a task, from the SDK or from any BullMQ client on the task-request queue. */
export const EnqueueRequestSchema = z
  .object({
    task: TaskNameSchema,
    args: JsonSchema.default({}),
    idempotencyKey: StorableString.min(1).max(200).optional(),
    queue: QueueNameSchema.optional(),
    priority: PrioritySchema.optional(),
    maxTries: z.number().int().min(1).max(1000).optional(),
    retry: RetryOverrideSchema.optional(),
    executionTimeoutMs: ExecutionTimeoutSchema.optional(),
    /** Earliest time to run, ISO 8601. */
    runAfter: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();
export type EnqueueRequest = z.input<typeof EnqueueRequestSchema>;
