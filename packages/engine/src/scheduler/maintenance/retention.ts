import { deleteFinishedTasks, deleteOldJobs, deleteOldRejections, type Queryable } from '@deferrable/db';
import type { Resources } from '../../resources';

export interface RetentionOptions {
  /** Finished task instances (and their transitions) are deleted this long after they ended; 0 keeps them. */
  taskRetentionMs: number;
  /** Job rows are deleted this long after they ended or last heartbeated; 0 keeps them. */
  jobRetentionMs: number;
  /** Rejections are deleted this long after they were recorded; 0 keeps them. */
  rejectionRetentionMs: number;
  /** Rows per delete statement: small, so that no statement holds many locks for long. */
  batch: number;
  /** Most statements per kind of row per run; the run asks to come back soon when there is more. */
  maxBatchesPerRun: number;
}

type DeleteBatch = (db: Queryable, olderThanMs: number, limit: number) => Promise<number>;

/**
 * Bounded storage: deletes finished task instances, old job rows and old rejections, one small
 * batch per statement (picked with SKIP LOCKED, so the hot path never waits on it). Returns
 * whether rows remain beyond this run's share.
 */
export class Retention {
  /** Rows deleted since start, per kind (for /status and tests). */
  readonly deleted = { tasks: 0, jobs: 0, rejections: 0 };

  constructor(
    private readonly res: Resources,
    private readonly opts: RetentionOptions,
  ) {}

  async run(): Promise<{ more: boolean }> {
    const tasks = await this.deleteOld('tasks', deleteFinishedTasks, this.opts.taskRetentionMs);
    const jobs = await this.deleteOld('jobs', deleteOldJobs, this.opts.jobRetentionMs);
    const rejections = await this.deleteOld('rejections', deleteOldRejections, this.opts.rejectionRetentionMs);
    return { more: tasks || jobs || rejections };
  }

  private async deleteOld(kind: keyof Retention['deleted'], deleteBatch: DeleteBatch, ageMs: number): Promise<boolean> {
    if (ageMs <= 0) return false;
    let total = 0;
    for (let i = 0; i < this.opts.maxBatchesPerRun; i++) {
      const n = await deleteBatch(this.res.db.pool, ageMs, this.opts.batch);
      total += n;
      if (n < this.opts.batch) {
        this.report(kind, total);
        return false;
      }
    }
    this.report(kind, total);
    return true;
  }

  private report(kind: keyof Retention['deleted'], count: number): void {
    this.deleted[kind] += count;
    if (count) this.res.logger.info({ kind, count }, 'retention deleted old rows');
  }
}
