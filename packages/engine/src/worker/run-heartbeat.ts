import { heartbeatRuns } from '@deferrable/db';
import { Loop } from '../loop';
import type { Resources } from '../resources';

/** A run this worker has in hand, by task instance id. */
export interface ActiveRun {
  tryNumber: number;
  startedAt: number;
  abort: AbortController;
  /** Its code has finished and its outcome is being recorded: the heartbeat leaves it alone. */
  settling: boolean;
}

/**
 * Heartbeats every run in hand, so the reaper leaves them alone; a run the database no longer
 * gives this worker (reaped, cancelled) is aborted.
 */
export class RunHeartbeat {
  private readonly loop: Loop;

  constructor(
    private readonly res: Resources,
    private readonly workerId: string,
    private readonly active: ReadonlyMap<string, ActiveRun>,
    intervalMs: number,
  ) {
    this.loop = new Loop('worker-run-heartbeat', intervalMs, () => this.beat(), res.logger);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async beat(): Promise<void> {
    const issuedAt = Date.now();
    const held = new Set((await heartbeatRuns(this.res.db.pool, this.workerId, [...this.active.keys()])).map((r) => `${r.id}:${r.try_number}`));
    for (const [id, run] of this.active) {
      if (run.startedAt < issuedAt && !run.settling && !held.has(`${id}:${run.tryNumber}`) && !run.abort.signal.aborted) {
        this.res.logger.warn({ taskInstanceId: id, try: run.tryNumber }, 'run is no longer held by this worker; aborting it');
        run.abort.abort(new Error('run no longer held by this worker'));
      }
    }
  }
}
