import { table } from './table';
import type { TaskTypeConflict, TaskTypeRow } from '@deferrable/db';

/** The catalog as a table, then one line per task type that live workers define differently. */
export function formatTaskTypes(types: readonly TaskTypeRow[], conflicts: readonly TaskTypeConflict[]): string {
  const header = ['name', 'queue', 'tries', 'retry delay', 'timeout', 'callbacks', 'version', 'updated'];
  const rows = types.map((t) => [
    t.name,
    [t.queue, ...t.queues].join(','),
    String(t.max_tries),
    `${t.retry_delay_ms} ms x${t.retry_backoff}`,
    t.execution_timeout_ms === null ? '-' : `${t.execution_timeout_ms} ms`,
    t.callbacks.join(',') || '-',
    String(t.version),
    t.updated_at.toISOString().replace('T', ' ').slice(0, 19),
  ]);
  const out = [types.length ? table(header, rows) : 'No task type is registered: start a worker that loads your task modules.'];
  for (const c of conflicts) {
    out.push(
      `conflict: ${c.name} is registered by live workers with ${c.hashes.length} different definitions (jobs ${c.jobIds.map((j) => j.slice(0, 8)).join(', ')})`,
    );
  }
  return out.join('\n');
}
