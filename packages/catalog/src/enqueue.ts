import { createHash, randomUUID } from 'node:crypto';
import { insertTaskInstance, type Queryable } from '@deferrable/db';
import { EnqueueRequestSchema, IdempotencyConflictError, type EnqueueRequest } from '@deferrable/domain';
import stringify from 'safe-stable-stringify';
import type { TaskCatalog } from './catalog';

/**
 * What identifies a request for idempotency: every field but the key itself, keys sorted, so that
 * the same request sent again (by any entry) hashes the same. `request` has passed the catalog's
 * check, so it parses.
 */
function requestHash(request: EnqueueRequest): string {
  // Parsed, so that a field left to its default (args: {}) hashes as the default given.
  const { idempotencyKey: _key, ...rest } = EnqueueRequestSchema.parse(request);
  return createHash('sha256')
    .update(stringify(rest) ?? '')
    .digest('hex');
}

/**
 * Checks a request against the task catalog and records a scheduled task instance (one
 * statement, which also wakes the scheduler). Nothing is written when the check fails. With an
 * idempotency key already used by the same request, returns the existing task instance and
 * `created: false`; used by a different request, throws IdempotencyConflictError.
 */
export async function enqueueTask(
  db: Queryable,
  catalog: TaskCatalog,
  request: EnqueueRequest,
  opts: { actor: string },
): Promise<{ id: string; created: boolean }> {
  const checked = await catalog.check(request);
  const hash = request.idempotencyKey ? requestHash(request) : null;
  const r = await insertTaskInstance(db, { ...checked, id: randomUUID(), requestHash: hash, actor: opts.actor });
  if (!r.created && r.requestHash !== null && r.requestHash !== hash) throw new IdempotencyConflictError(request.idempotencyKey!, r.id);
  return { id: r.id, created: r.created };
}
