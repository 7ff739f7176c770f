import { recordRejection } from '@deferrable/db';
import { toDeferrableError } from '@deferrable/domain';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Resources } from '../resources';

/** Logs refused input and records it as a rejection (the excerpt is bounded by recordRejection); returns the reason. */
export async function refuse(res: Resources, source: string, jobId: string | null, err: unknown, excerpt: unknown): Promise<string> {
  const reason = toDeferrableError(err).message;
  res.logger.warn({ source, jobId, reason }, 'rejected input');
  await recordRejection(res.db.pool, { source, jobId, reason, excerpt });
  return reason;
}

/** Records a refused queue job where a person will see it; the job fails without retry. */
export async function rejectJob(res: Resources, source: string, job: Job, err: unknown): Promise<never> {
  throw new UnrecoverableError(await refuse(res, source, job.id ?? null, err, job.data));
}
