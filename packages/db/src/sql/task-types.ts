import type { Queryable } from '../client';
import type { NewTaskInstance } from './enqueue';
import { JOB_RUNNING } from './jobs';

/**
 * A task type's definition as the catalog stores it (see @deferrable/catalog's describeTaskType):
 * the defaults an enqueue takes from it, and what a request is checked against.
 */
export interface TaskTypeRecord
  extends Pick<NewTaskInstance, 'queue' | 'priority' | 'maxTries' | 'retryDelayMs' | 'retryBackoff' | 'retryMaxDelayMs' | 'executionTimeoutMs'> {
  name: string;
  definitionHash: string;
  /** JSON Schema of the arguments; null when the type takes any JSON. */
  argsSchema: unknown;
  /** Other queues a request may name. */
  queues: string[];
  callbacks: string[];
}

export interface TaskTypeRow {
  name: string;
  definition_hash: string;
  args_schema: unknown;
  queue: string;
  queues: string[];
  priority: number;
  max_tries: number;
  retry_delay_ms: number;
  retry_backoff: number;
  retry_max_delay_ms: number;
  execution_timeout_ms: number | null;
  callbacks: string[];
  version: number;
  updated_at: Date;
}

const COLUMNS = `name, definition_hash, args_schema, queue, queues, priority, max_tries, retry_delay_ms, retry_backoff,
  retry_max_delay_ms, execution_timeout_ms, callbacks, version, updated_at`;

// One statement for all the types a worker loads: the latest registration of a definition wins,
// and a changed definition bumps the version (validators are cached per name and version).
const REGISTER = `
WITH d AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb) AS d(name text, "definitionHash" text, "argsSchema" jsonb, queue text,
    queues text[], priority int, "maxTries" int, "retryDelayMs" int, "retryBackoff" float8, "retryMaxDelayMs" int,
    "executionTimeoutMs" int, callbacks text[])
), upserted AS (
  INSERT INTO task_type (name, definition_hash, args_schema, queue, queues, priority, max_tries, retry_delay_ms, retry_backoff,
    retry_max_delay_ms, execution_timeout_ms, callbacks)
  SELECT name, "definitionHash", "argsSchema", queue, queues, priority, "maxTries", "retryDelayMs", "retryBackoff",
    "retryMaxDelayMs", "executionTimeoutMs", callbacks FROM d
  ON CONFLICT (name) DO UPDATE SET
    definition_hash = EXCLUDED.definition_hash, args_schema = EXCLUDED.args_schema, queue = EXCLUDED.queue,
    queues = EXCLUDED.queues, priority = EXCLUDED.priority, max_tries = EXCLUDED.max_tries,
    retry_delay_ms = EXCLUDED.retry_delay_ms, retry_backoff = EXCLUDED.retry_backoff,
    retry_max_delay_ms = EXCLUDED.retry_max_delay_ms, execution_timeout_ms = EXCLUDED.execution_timeout_ms,
    callbacks = EXCLUDED.callbacks, version = task_type.version + 1, updated_at = now()
  WHERE task_type.definition_hash <> EXCLUDED.definition_hash
  RETURNING name
)
INSERT INTO task_type_registration (job_id, task_name, definition_hash)
SELECT $1, name, "definitionHash" FROM d
ON CONFLICT (job_id, task_name) DO UPDATE SET definition_hash = EXCLUDED.definition_hash, registered_at = now()`;

/** Publishes the task types a process loads, and records that this job registered them. */
export async function registerTaskTypes(db: Queryable, jobId: string, types: readonly TaskTypeRecord[]): Promise<void> {
  if (types.length === 0) return;
  await db.query(REGISTER, [jobId, JSON.stringify(types)]);
}

export interface TaskTypeConflict {
  name: string;
  /** Distinct definition hashes registered by live processes. */
  hashes: string[];
  jobIds: string[];
}

// Live: a running job row heartbeating within the threshold. Index: task_type_registration_name_idx.
const CONFLICTS = `
SELECT r.task_name AS name, array_agg(DISTINCT r.definition_hash ORDER BY r.definition_hash) AS hashes,
       array_agg(r.job_id::text ORDER BY r.job_id) AS "jobIds"
FROM task_type_registration r JOIN job j ON j.id = r.job_id
WHERE ($1::text[] IS NULL OR r.task_name = ANY($1::text[])) AND j.state = ${JOB_RUNNING}
  AND j.latest_heartbeat > now() - make_interval(secs => $2::float8 / 1000)
GROUP BY r.task_name
HAVING count(DISTINCT r.definition_hash) > 1
ORDER BY r.task_name`;

/** Task types that live processes registered with different definitions (of these names, or all). */
export async function taskTypeConflicts(db: Queryable, aliveWithinMs: number, names?: readonly string[]): Promise<TaskTypeConflict[]> {
  return (await db.query<TaskTypeConflict>(CONFLICTS, [names ?? null, aliveWithinMs])).rows;
}

/** One task type by name (primary key), or null. */
export async function findTaskType(db: Queryable, name: string): Promise<TaskTypeRow | null> {
  return (await db.query<TaskTypeRow>(`SELECT ${COLUMNS} FROM task_type WHERE name = $1`, [name])).rows[0] ?? null;
}

/** Every registered task type, by name (the catalog holds one row per type: small). */
export async function listTaskTypes(db: Queryable): Promise<TaskTypeRow[]> {
  return (await db.query<TaskTypeRow>(`SELECT ${COLUMNS} FROM task_type ORDER BY name`)).rows;
}

/** Names of every registered task type (for "did you mean"). */
export async function taskTypeNames(db: Queryable): Promise<string[]> {
  return (await db.query<{ name: string }>('SELECT name FROM task_type ORDER BY name')).rows.map((r) => r.name);
}
