import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { endJob, heartbeatJob, registerJob, type JobType } from '@deferrable/db';
import { Loop } from './loop';
import type { Resources } from './resources';

/**
 * The job row of one scheduler, triggerer or worker process, and its heartbeat: what `jobs list`
 * and `jobs check` read, and what triggerers use to decide whether a peer is alive.
 */
export class ProcessJob {
  readonly id = randomUUID();
  private readonly loop: Loop;
  private ended = false;
  private lastBeatAt = 0;

  constructor(
    private readonly res: Resources,
    readonly jobType: JobType,
    private readonly opts: { capacity: number; queues: string[]; heartbeatMs: number; load: () => number },
  ) {
    this.loop = new Loop(`${jobType}-heartbeat`, opts.heartbeatMs, () => this.beat(), res.logger);
  }

  async start(): Promise<void> {
    await registerJob(this.res.db.pool, {
      id: this.id,
      jobType: this.jobType,
      hostname: hostname(),
      pid: process.pid,
      capacity: this.opts.capacity,
      queues: this.opts.queues,
    });
    this.lastBeatAt = Date.now();
    this.loop.start();
  }

  private async beat(): Promise<void> {
    const alive = await heartbeatJob(this.res.db.pool, this.id, this.opts.load());
    if (alive) this.lastBeatAt = Date.now();
    if (!alive && !this.ended) this.res.logger.warn({ jobId: this.id }, 'job row is no longer running');
  }

  /** Heartbeating recently enough that peers see this process as alive. */
  healthy(): { healthy: boolean; heartbeatAgeMs: number } {
    const heartbeatAgeMs = this.lastBeatAt ? Date.now() - this.lastBeatAt : Infinity;
    return { healthy: !this.ended && heartbeatAgeMs < this.opts.heartbeatMs * 3, heartbeatAgeMs };
  }

  /** Ends the job row once: a later stop (the app's own, after a failed start) changes nothing. */
  async stop(state: 'success' | 'failed' = 'success'): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.loop.stop();
    await endJob(this.res.db.pool, this.id, state).catch((err: unknown) => this.res.logger.warn({ err, jobId: this.id }, 'could not mark job row ended'));
  }
}
