import { createHash } from 'node:crypto';
import type { TaskTypeRecord } from '@deferrable/db';
import { ExecutionTimeoutSchema, parseInput, PrioritySchema, QueueNameSchema, RetryPolicySchema, TaskNameSchema, type TaskType } from '@deferrable/domain';
import { z } from 'zod';
import { compileArgsSchema } from './validator';

// What a definition may say, checked when a worker publishes it: a bad default found at startup
// rather than on every enqueue.
const DefinitionSchema = z.object({
  name: TaskNameSchema,
  queue: QueueNameSchema,
  queues: z.array(QueueNameSchema).max(100),
  priority: PrioritySchema,
  retry: RetryPolicySchema,
  executionTimeoutMs: ExecutionTimeoutSchema.nullable(),
});

/**
 * A task type as the catalog stores it: defaults (queue, priority, retry policy, execution
 * timeout), callback names, and the argument schema as JSON Schema, generated from the zod
 * schema for the input a request sends (so a field with a default is optional). Refinements and
 * transforms have no JSON Schema: the worker still checks them with zod before each run.
 * Throws when the definition is invalid or its schema cannot be checked at enqueue.
 */
export function describeTaskType(type: TaskType): TaskTypeRecord {
  const where = `definition of task type "${type.name}"`;
  const def = parseInput(
    DefinitionSchema,
    {
      name: type.name,
      queue: type.queue ?? 'default',
      queues: [...(type.queues ?? [])],
      priority: type.priority ?? 0,
      retry: type.retry ?? {},
      executionTimeoutMs: type.executionTimeoutMs ?? null,
    },
    where,
  );
  const argsSchema = type.args ? z.toJSONSchema(type.args, { io: 'input', unrepresentable: 'any' }) : null;
  if (argsSchema) compileArgsSchema(argsSchema, where);
  const body = {
    name: def.name,
    argsSchema,
    queue: def.queue,
    queues: [...new Set(def.queues)].filter((q) => q !== def.queue).sort(),
    priority: def.priority,
    maxTries: def.retry.maxTries,
    retryDelayMs: def.retry.delayMs,
    retryBackoff: def.retry.backoff,
    retryMaxDelayMs: def.retry.maxDelayMs,
    executionTimeoutMs: def.executionTimeoutMs,
    callbacks: Object.keys(type.callbacks ?? {}).sort(),
  };
  return { ...body, definitionHash: createHash('sha256').update(canonicalJson(body)).digest('hex') };
}

/** JSON with object keys sorted, so that equal definitions hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
