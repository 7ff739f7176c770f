import { assignedTriggerCount, assignedTriggerIds, releaseTriggerIds } from '@deferrable/db';
import { Loop } from '../loop';
import type { Resources } from '../resources';
import type { TriggerClaimer } from './claimer';
import type { OutcomeRecorder } from './outcome-recorder';
import type { TriggerRunner } from './runner';

export interface TriggerSyncerOptions {
  syncIntervalMs: number;
}

/**
 * Keeps what this triggerer runs in line with what PostgreSQL assigns to it: stops triggers no
 * longer assigned here (task cancelled, timed out or resumed; or taken over), and hands back
 * triggers assigned here that it does not run.
 */
export class TriggerSyncer {
  private readonly loop: Loop;
  private stopping = false;

  constructor(
    private readonly res: Resources,
    opts: TriggerSyncerOptions,
    private readonly triggererId: string,
    private readonly runner: TriggerRunner,
    private readonly recorder: OutcomeRecorder,
    private readonly claimer: TriggerClaimer,
  ) {
    this.loop = new Loop('trigger-sync', opts.syncIntervalMs, () => this.sync(), res.logger);
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
  }

  /** One pass (the loop runs it every sync interval). */
  async sync(): Promise<void> {
    // Even with nothing running: triggers may be assigned here that this replica does not run.
    if (this.stopping) return;
    // Nothing but this replica assigns triggers to it, so when the count matches what it runs
    // (plus outcomes not yet recorded), nothing was taken away: skip fetching and comparing every
    // id of a large replica. Any doubt (a race with a claim or a flush) falls back to the full check.
    // Only triggers started before the query can be judged by its answer.
    let issuedAt = 0;
    const assignedCount = await this.recorder.whileNotFlushing(() => {
      issuedAt = Date.now();
      return assignedTriggerCount(this.res.db.pool, this.triggererId);
    });
    const unrecorded = this.recorder.pending;
    let runningBefore = 0;
    for (const [, r] of this.runner.entries()) if (r.startedAt < issuedAt && !r.cancelled) runningBefore++;
    if (runningBefore === this.runner.size && assignedCount === runningBefore + unrecorded) return;
    const claims = this.claimer.claimsStarted;
    const assigned = await assignedTriggerIds(this.res.db.pool, this.triggererId);
    // A copy: cancelling removes entries from the runner while this loop goes on.
    for (const [id, r] of Array.from(this.runner.entries())) {
      if (r.startedAt < issuedAt && !assigned.has(id) && !r.cancelled) {
        this.res.logger.info({ triggerId: id, triggerType: r.type }, 'trigger no longer wanted here; cancelling');
        this.runner.cancel(r, new Error('trigger cancelled'));
      }
    }
    // The other way round: assigned here, but neither running nor being recorded. A claim that
    // committed but whose answer was lost with its connection leaves such triggers; nobody else
    // takes them while this replica lives. Hand them back, unless a claim ran meanwhile (its
    // rows may not have started yet when the ids were read).
    if (this.claimer.claimInFlight || this.claimer.claimsStarted !== claims) return;
    const orphans = [...assigned].filter((id) => !this.runner.has(id) && !this.recorder.isRecording(id));
    if (orphans.length === 0) return;
    const released = await releaseTriggerIds(this.res.db.pool, this.triggererId, orphans);
    this.res.logger.warn({ count: released }, 'released triggers assigned here that were not running');
    this.claimer.wake();
  }
}
