import type { Queryable } from '../client';

/** A job row's state while its process lives (it ends as 'success' or 'failed'), as an SQL literal. */
export const JOB_RUNNING = "'running'";

export type JobType = 'scheduler' | 'triggerer' | 'worker';

export interface JobRow {
  id: string;
  job_type: JobType;
  hostname: string;
  pid: number;
  state: string;
  capacity: number;
  load: number;
  queues: string[];
  started_at: Date;
  ended_at: Date | null;
  latest_heartbeat: Date;
  heartbeat_age_ms: number;
}

export async function registerJob(
  db: Queryable,
  j: { id: string; jobType: JobType; hostname: string; pid: number; capacity: number; queues: string[] },
): Promise<void> {
  await db.query(
    `INSERT INTO job (id, job_type, hostname, pid, state, capacity, load, queues)
     VALUES ($1, $2, $3, $4, ${JOB_RUNNING}, $5, 0, $6)`,
    [j.id, j.jobType, j.hostname, j.pid, j.capacity, j.queues],
  );
}

/** Returns false when the row is no longer running (another process declared this one dead). */
export async function heartbeatJob(db: Queryable, id: string, load: number): Promise<boolean> {
  const { rowCount } = await db.query(`UPDATE job SET latest_heartbeat = now(), load = $2 WHERE id = $1 AND state = ${JOB_RUNNING}`, [id, load]);
  return rowCount === 1;
}

export async function endJob(db: Queryable, id: string, state: 'success' | 'failed' = 'success'): Promise<void> {
  await db.query(`UPDATE job SET state = $2, ended_at = now() WHERE id = $1`, [id, state]);
}

// Index: job_liveness_idx (job_type, state, latest_heartbeat).
export async function listJobs(db: Queryable, opts: { jobType?: JobType; limit?: number } = {}): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>(
    `SELECT id, job_type, hostname, pid, state, capacity, load, queues, started_at, ended_at, latest_heartbeat,
            (extract(epoch FROM (now() - latest_heartbeat)) * 1000)::float8 AS heartbeat_age_ms
     FROM job WHERE ($1::text IS NULL OR job_type = $1)
     ORDER BY started_at DESC LIMIT $2`,
    [opts.jobType ?? null, opts.limit ?? 100],
  );
  return rows;
}
