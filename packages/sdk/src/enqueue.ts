import { randomUUID } from 'node:crypto';
import { insertTaskInstance, type Queryable } from '@deferrable/db';
import { assertJsonSize, EnqueueRequestSchema, parseInput, RetryPolicySchema, type EnqueueRequest } from '@deferrable/domain';

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

const DEFAULT_RETRY = RetryPolicySchema.parse({});

/**
 * Validates a request and records a scheduled task instance (one statement, which also wakes the
 * scheduler). With an idempotency key, a repeat returns the existing task instance.
 */
export async function enqueueWith(
  db: Queryable,
  request: EnqueueRequest,
  opts: { actor: string; maxPayloadBytes?: number },
): Promise<{ id: string; created: boolean }> {
  const req = parseInput(EnqueueRequestSchema, request, 'enqueue request');
  assertJsonSize(req.args, opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES, 'task arguments');
  return insertTaskInstance(db, {
    id: randomUUID(),
    taskName: req.task,
    args: req.args,
    queue: req.queue ?? 'default',
    priority: req.priority ?? 0,
    maxTries: req.maxTries ?? 1,
    retryDelayMs: req.retry?.delayMs ?? DEFAULT_RETRY.delayMs,
    retryBackoff: req.retry?.backoff ?? DEFAULT_RETRY.backoff,
    retryMaxDelayMs: req.retry?.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs,
    executionTimeoutMs: req.executionTimeoutMs ?? null,
    runAfter: req.runAfter ? new Date(req.runAfter) : null,
    idempotencyKey: req.idempotencyKey ?? null,
    actor: opts.actor,
  });
}
