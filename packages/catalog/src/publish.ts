import { registerTaskTypes, taskTypeConflicts, type Queryable, type TaskTypeConflict } from '@deferrable/db';
import type { TaskType } from '@deferrable/domain';
import { describeTaskType } from './definition';

/**
 * Publishes the task types a worker loads to the catalog, as job `jobId`, and returns the types
 * that another live process registered with a different definition (two versions of a task's code
 * running at once: a person should see it). Throws before writing if a definition is invalid.
 */
export async function publishTaskTypes(db: Queryable, jobId: string, types: readonly TaskType[], opts: { aliveWithinMs: number }): Promise<TaskTypeConflict[]> {
  const records = types.map(describeTaskType);
  await registerTaskTypes(db, jobId, records);
  if (records.length === 0) return [];
  return taskTypeConflicts(
    db,
    opts.aliveWithinMs,
    records.map((r) => r.name),
  );
}
