import { table } from './table';
import { listJobs, type JobRow, type JobType, type Queryable } from '@deferrable/db';

export const JOB_TYPES: readonly JobType[] = ['scheduler', 'triggerer', 'worker'];

/** Alive: marked running and heartbeating within the threshold (what triggerers use for takeover). */
function isAlive(job: JobRow, thresholdMs: number): boolean {
  return job.state === 'running' && job.heartbeat_age_ms < thresholdMs;
}

export function formatJobs(jobs: readonly JobRow[], thresholdMs: number): string {
  const header = ['id', 'type', 'host', 'pid', 'state', 'alive', 'heartbeat age', 'load', 'queues', 'started'];
  const rows = jobs.map((j) => [
    j.id.slice(0, 8),
    j.job_type,
    j.hostname,
    String(j.pid),
    j.state,
    isAlive(j, thresholdMs) ? 'yes' : 'no',
    `${(j.heartbeat_age_ms / 1000).toFixed(1)} s`,
    j.capacity > 0 ? `${j.load}/${j.capacity}` : String(j.load),
    j.queues.join(',') || '-',
    j.started_at.toISOString().replace('T', ' ').slice(0, 19),
  ]);
  return table(header, rows);
}

export interface CheckResult {
  ok: boolean;
  alive: JobRow[];
  message: string;
}

/** `jobs check`: ok when at least one job of the type (and host, if given) is alive. */
export async function checkJobs(db: Queryable, opts: { jobType: JobType; hostname?: string; thresholdMs: number; limit?: number }): Promise<CheckResult> {
  const jobs = await listJobs(db, { jobType: opts.jobType, limit: 1000 });
  const alive = jobs.filter((j) => isAlive(j, opts.thresholdMs) && (!opts.hostname || j.hostname === opts.hostname));
  const ok = alive.length > 0 && (opts.limit === undefined || alive.length <= opts.limit);
  const message =
    alive.length === 0
      ? `No alive ${opts.jobType} job found${opts.hostname ? ` on ${opts.hostname}` : ''}.`
      : ok
        ? `Found ${alive.length} alive ${opts.jobType} job(s).`
        : `Found ${alive.length} alive ${opts.jobType} jobs, more than the limit of ${opts.limit}.`;
  return { ok, alive, message };
}
