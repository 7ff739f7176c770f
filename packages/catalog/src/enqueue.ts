import { randomUUID } from 'node:crypto';
import { insertTaskInstance, type Queryable } from '@deferrable/db';
import type { EnqueueRequest } from '@deferrable/domain';
import type { TaskCatalog } from './catalog';

/**
 * Checks a request against the task catalog and records a scheduled task instance (one
 * statement, which also wakes the scheduler). Nothing is written when the check fails. With an
 * idempotency key already used, returns the existing task instance and `created: false`.
 */
export async function enqueueTask(
  db: Queryable,
  catalog: TaskCatalog,
  request: EnqueueRequest,
  opts: { actor: string },
): Promise<{ id: string; created: boolean }> {
  const checked = await catalog.check(request);
  return insertTaskInstance(db, { ...checked, id: randomUUID(), actor: opts.actor });
}
