import { claimTriggers, triggererLoad } from '@deferrable/db';
import { subscribeHints, triggerCreatedChannel } from '@deferrable/queues';
import { Loop } from '../loop';
import type { Resources } from '../resources';
import type { TriggerRunner } from './runner';

export interface TriggerClaimerOptions {
  /** Most triggers this replica runs at once. */
  capacity: number;
  queues: string[];
  healthThresholdMs: number;
  claimIntervalMs: number;
  /** Most triggers claimed in one statement. */
  claimBatch?: number;
}

/**
 * Claims unfired triggers of its queues for this triggerer, up to its fair share and capacity, and
 * hands them to the runner. Woken by a Redis hint when a trigger is created, when the stalest peer
 * would expire, and every claim interval as the backstop.
 */
export class TriggerClaimer {
  private readonly loop: Loop;
  private hints: { close(): Promise<void> } | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Claims started so far, and whether one is in flight (its rows may not be running yet). */
  claimsStarted = 0;
  claimInFlight = false;
  /** Since when the claims have seen unassigned triggers older than two claim intervals. */
  private strandedSince: number | null = null;

  constructor(
    private readonly res: Resources,
    private readonly opts: TriggerClaimerOptions,
    private readonly triggererId: string,
    private readonly runner: TriggerRunner,
  ) {
    this.loop = new Loop('trigger-claim', opts.claimIntervalMs, () => this.claim(), res.logger);
  }

  start(): void {
    // New triggers are announced by a Redis hint (sent by the worker that deferred); polling
    // every claim interval is the backstop, and every (re)subscription catches up with a claim.
    this.hints = subscribeHints(
      this.res.redisUrl,
      triggerCreatedChannel(this.res.prefix),
      (queue) => {
        if (this.opts.queues.includes(queue || 'default')) this.loop.wake();
      },
      () => this.loop.wake(),
    );
    this.loop.start();
  }

  /** Claims again now. */
  wake(): void {
    this.loop.wake();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.hints?.close();
    await this.loop.stop();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
  }

  private async claim(): Promise<void> {
    if (this.stopping) return;
    const room = this.opts.capacity - this.runner.size;
    if (room <= 0) return;
    this.claimsStarted++;
    this.claimInFlight = true;
    try {
      await this.claimUpTo(room);
    } finally {
      this.claimInFlight = false;
    }
  }

  private async claimUpTo(room: number): Promise<void> {
    const batch = this.opts.claimBatch ?? 5000;
    const limit = Math.min(room, batch, Math.max(0, (await this.fairShare()) - this.runner.size));
    if (limit <= 0) return;
    const rows = await claimTriggers(this.res.db.pool, {
      triggererId: this.triggererId,
      limit,
      healthThresholdMs: this.opts.healthThresholdMs,
      queues: this.opts.queues,
    });
    this.runner.startClaimed(rows);
    if (rows.length > 0) this.res.logger.debug({ count: rows.length, running: this.runner.size }, 'claimed triggers');
    // A full batch means more may be waiting: claim again at once.
    if (rows.length === limit && limit === batch) this.loop.wake();
  }

  /**
   * Up to a fair share of the unfired triggers of our queues, so replicas share the work: what the
   * live triggerers report running plus what waits (unassigned, or held by dead triggerers).
   */
  private async fairShare(): Promise<number> {
    const load = await triggererLoad(this.res.db.pool, {
      healthThresholdMs: this.opts.healthThresholdMs,
      queues: this.opts.queues,
      self: this.triggererId,
      running: this.runner.size,
    });
    this.watchPeerExpiry(load.next_expiry_ms);
    // Alone (or not yet counted as alive), a triggerer takes what it has room for. So it does when
    // triggers stay unclaimed: the peers counted in the share cannot take them (they serve other
    // queues, or are full), and a share would strand them. A trigger's age alone does not say so
    // (one just handed back by a stopping peer is old), so the oldest must have been older than
    // two claim intervals for at least one claim interval: the peers had their turn.
    const now = Date.now();
    const old = load.unassigned_age_ms !== null && load.unassigned_age_ms > 2 * this.opts.claimIntervalMs;
    if (!old) this.strandedSince = null;
    else this.strandedSince ??= now;
    const stranded = this.strandedSince !== null && now - this.strandedSince >= this.opts.claimIntervalMs;
    return load.unfired === null || stranded ? Infinity : Math.ceil(load.unfired / Math.max(1, load.alive));
  }

  /**
   * Claims again the moment the stalest peer would cross the health threshold, so a dead peer's
   * triggers move within the threshold plus one claim (not plus a whole claim interval).
   */
  private watchPeerExpiry(ms: number | null): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (ms === null || this.stopping) return;
    this.expiryTimer = setTimeout(() => this.loop.wake(), Math.max(0, ms) + 5);
    this.expiryTimer.unref();
  }
}
