import { MAX_FIRED_HINT_IDS, type TriggerOutcome } from '@deferrable/domain';
import { recordTriggerOutcomes } from '@deferrable/db';
import { HintPublisher, Producer, triggerEvents, triggerFiredChannel } from '@deferrable/queues';
import { Batcher } from '../batcher';
import { retryThroughOutage } from '../outage';
import type { Resources } from '../resources';

export interface OutcomeRecorderOptions {
  /** Most outcomes recorded in one statement. */
  batchSize?: number;
}

export interface OutcomeItem {
  triggerId: string;
  outcome: TriggerOutcome;
}

/**
 * Records what triggers fired (or why they failed) on their rows in PostgreSQL, batched, the first
 * outcome winning; then tells the schedulers: a fired hint at once, and a trigger-event job.
 */
export class OutcomeRecorder {
  private readonly events: Producer<typeof triggerEvents.schema, void>;
  private readonly firedHints: HintPublisher;
  private readonly batch: Batcher<OutcomeItem, boolean>;
  /** Triggers whose outcome waits to be recorded (no longer running, still assigned here). */
  private readonly recording = new Set<string>();
  // A count of assigned triggers and the recording of outcomes exclude each other, so the count
  // sees every fired-but-unrecorded trigger as exactly the outcomes still waiting here.
  private flushesInFlight = 0;
  private flushesDone: (() => void)[] = [];
  private counting: Promise<unknown> | null = null;
  private stopping = false;

  constructor(
    private readonly res: Resources,
    opts: OutcomeRecorderOptions = {},
  ) {
    this.events = new Producer(triggerEvents, res.redisUrl, res.prefix);
    this.firedHints = new HintPublisher(res.redisUrl, triggerFiredChannel(res.prefix));
    this.batch = new Batcher((items) => this.flush(items), opts.batchSize ?? 1000);
  }

  /** Outcomes handed in and not yet settled. */
  get pending(): number {
    return this.batch.pending;
  }

  /** Whether this trigger's outcome is still on its way to PostgreSQL. */
  isRecording(triggerId: string): boolean {
    return this.recording.has(triggerId);
  }

  /**
   * Hands an outcome to the recording batch; until it settles, the trigger counts as ours. Marks it
   * synchronously, so a caller can stop counting it as running right after calling.
   */
  async record(triggerId: string, outcome: TriggerOutcome): Promise<void> {
    this.recording.add(triggerId);
    try {
      await this.batch.add({ triggerId, outcome });
    } catch {
      // Only when stopping (recording retries through outages): the trigger stays unfired and
      // another replica runs it again.
    } finally {
      this.recording.delete(triggerId);
    }
  }

  /** Runs `count` while no flush is in flight, and holds new flushes back until it settles. */
  async whileNotFlushing<T>(count: () => Promise<T>): Promise<T> {
    if (this.flushesInFlight > 0) await new Promise<void>((r) => this.flushesDone.push(r));
    const counting = count();
    this.counting = counting;
    try {
      return await counting;
    } finally {
      this.counting = null;
    }
  }

  /** From now on, an outage ends the retries (after a few), so a stop is not held for ever. */
  stopRetrying(): void {
    this.stopping = true;
  }

  /** Waits for every outcome handed in so far to be recorded (or given up). */
  async drain(): Promise<void> {
    await this.batch.drain();
  }

  async close(): Promise<void> {
    this.stopping = true;
    await this.events.close();
    await this.firedHints.close();
  }

  private async flush(items: OutcomeItem[]): Promise<boolean[]> {
    while (this.counting) await this.counting.catch(() => undefined);
    this.flushesInFlight++;
    try {
      return await this.recordAndPublish(items);
    } finally {
      if (--this.flushesInFlight === 0) for (const done of this.flushesDone.splice(0)) done();
    }
  }

  private async recordAndPublish(items: OutcomeItem[]): Promise<boolean[]> {
    // The outcome must reach PostgreSQL: keep trying through an outage. Only when stopping do we
    // give up; the triggers then stay unfired and another replica re-runs them after takeover.
    const recorded = await retryThroughOutage(() => recordTriggerOutcomes(this.res.db.pool, items), {
      retryable: () => true,
      giveUp: (attempt) => this.stopping && attempt >= 5,
      onRetry: (err, attempt) => this.res.logger.warn({ err, attempt, count: items.length }, 'recording trigger outcomes failed; retrying'),
      baseDelayMs: 50,
      maxDelayMs: 2000,
    });
    if (recorded.length > 0) await this.publish(recorded);
    const set = new Set(recorded);
    return items.map((i) => set.has(i.triggerId));
  }

  private async publish(recorded: string[]): Promise<void> {
    // The hint lets schedulers apply the events at once, before their jobs reach the front of
    // the trigger-event queue; the jobs follow. A lost publish of either is recovered by the
    // scheduler's backstop scan of fired triggers.
    for (let i = 0; i < recorded.length; i += MAX_FIRED_HINT_IDS) {
      this.firedHints.publishNow(recorded.slice(i, i + MAX_FIRED_HINT_IDS).join(','));
    }
    await this.events.addBulk(undefined, recorded.map((triggerId) => ({ triggerId }))).catch((err: unknown) =>
      this.res.logger.warn({ err, count: recorded.length }, 'publishing trigger events failed; the scheduler backstop will apply them'),
    );
    for (const id of recorded) this.res.logger.debug({ triggerId: id }, 'trigger fired');
  }
}
