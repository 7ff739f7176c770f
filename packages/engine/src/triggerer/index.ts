import {
  MAX_FIRED_HINT_IDS,
  recordError,
  TriggerEventSchema,
  parseInput,
  type Trigger,
  type TriggerOutcome,
} from '@deferrable/domain';
import {
  assignedTriggerCount,
  assignedTriggerIds,
  claimTriggers,
  recordTriggerOutcomes,
  releaseTriggerIds,
  releaseTriggers,
  triggererLoad,
} from '@deferrable/db';
import { HintPublisher, Producer, subscribeHints, triggerCreatedChannel, triggerEvents, triggerFiredChannel } from '@deferrable/queues';
import type { TriggerRegistry } from '@deferrable/triggers';
import { Batcher } from '../batcher';
import { Loop } from '../loop';
import { retryThroughOutage } from '../outage';
import { ProcessJob } from '../process-job';
import type { Resources } from '../resources';
import { BlockDetector } from './block-detector';
import { RunningTrigger } from './context';
import { TimerQueue } from './timer-queue';
import { systemClock } from '@deferrable/triggers';

export interface TriggererOptions {
  triggers: TriggerRegistry;
  capacity: number;
  queues: string[];
  heartbeatMs: number;
  healthThresholdMs: number;
  claimIntervalMs: number;
  syncIntervalMs: number;
  /** A trigger callback that holds the event loop this long is named in the logs (0: off). */
  blockWarnMs: number;
  /** Most triggers claimed in one statement. */
  claimBatch?: number;
  /** How long a stop waits for cancelled triggers to end before it hands them back anyway. */
  shutdownGraceMs?: number;
}

/**
 * Claims triggers up to its capacity, runs them all concurrently on this event loop, records each
 * outcome in PostgreSQL (batched, first outcome wins) and then publishes a trigger-event job.
 */
export class Triggerer {
  readonly job: ProcessJob;
  private readonly running = new Map<string, RunningTrigger>();
  private readonly claimLoop: Loop;
  private readonly syncLoop: Loop;
  private readonly events: Producer<typeof triggerEvents.schema, void>;
  private readonly firedHints: HintPublisher;
  private readonly outcomes: Batcher<{ triggerId: string; outcome: TriggerOutcome }, boolean>;
  private hints: { close(): Promise<void> } | null = null;
  private stopping = false;
  readonly blocks: BlockDetector;
  private readonly timers: TimerQueue<RunningTrigger>;
  private expiryTimer: NodeJS.Timeout | null = null;
  // The sync's count and the recording of outcomes exclude each other, so the count sees every
  // fired-but-unrecorded trigger as exactly the outcomes still waiting in the batcher.
  private flushesInFlight = 0;
  private flushesDone: (() => void)[] = [];
  private counting: Promise<number> | null = null;
  /** Triggers whose outcome waits to be recorded (no longer running, still assigned here). */
  private readonly recording = new Set<string>();
  /** Claims started so far, and whether one is in flight (its rows may not be running yet). */
  private claimsStarted = 0;
  private claimInFlight = false;
  /** Since when the claims have seen unassigned triggers older than two claim intervals. */
  private strandedSince: number | null = null;

  constructor(
    private readonly res: Resources,
    private readonly opts: TriggererOptions,
  ) {
    this.job = new ProcessJob(res, 'triggerer', {
      capacity: opts.capacity,
      queues: opts.queues,
      heartbeatMs: opts.heartbeatMs,
      load: () => this.running.size,
    });
    this.claimLoop = new Loop('trigger-claim', opts.claimIntervalMs, () => this.claim(), res.logger);
    this.syncLoop = new Loop('trigger-sync', opts.syncIntervalMs, () => this.sync(), res.logger);
    this.events = new Producer(triggerEvents, res.redisUrl, res.prefix);
    this.firedHints = new HintPublisher(res.redisUrl, triggerFiredChannel(res.prefix));
    this.outcomes = new Batcher((items) => this.flushOutcomes(items), 1000);
    this.timers = new TimerQueue<RunningTrigger>(() => res.clock.now(), (due) => this.fireTimers(due));
    this.blocks = new BlockDetector(opts.blockWarnMs, (b) =>
      res.logger.warn(
        { triggerId: b.triggerId, triggerType: b.triggerType, taskInstanceId: b.taskInstanceId, blockedMs: b.blockedMs },
        'a trigger blocked the event loop; triggers must only await I/O or timers',
      ),
    );
  }

  get triggererId(): string {
    return this.job.id;
  }

  get runningCount(): number {
    return this.running.size;
  }

  status(): Record<string, unknown> {
    return {
      triggererId: this.triggererId,
      running: this.running.size,
      capacity: this.opts.capacity,
      loopDelayMs: this.blocks.loopDelay(),
      blockedByType: Object.fromEntries(this.blocks.counts),
    };
  }

  runningIds(): string[] {
    return [...this.running.keys()];
  }

  async start(): Promise<void> {
    this.blocks.start();
    await this.job.start();
    // New triggers are announced by a Redis hint (sent by the worker that deferred); polling
    // every claim interval is the backstop, and every (re)subscription catches up with a claim.
    this.hints = subscribeHints(
      this.res.redisUrl,
      triggerCreatedChannel(this.res.prefix),
      (queue) => {
        if (this.opts.queues.includes(queue || 'default')) this.claimLoop.wake();
      },
      () => this.claimLoop.wake(),
    );
    this.claimLoop.start();
    this.syncLoop.start();
    this.res.logger.info({ triggererId: this.triggererId, capacity: this.opts.capacity, queues: this.opts.queues }, 'triggerer started');
  }

  /** Stops every trigger (cleanup), records what already fired, hands the rest back, ends the job row. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.hints?.close();
    await this.claimLoop.stop();
    await this.syncLoop.stop();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const stopped = [...this.running.values()];
    for (const r of stopped) this.cancel(r, new Error('triggerer stopping'));
    this.timers.stop();
    // A trigger that ignores its signal must not hold the stop (and with it the hand-back) for
    // ever: past the grace period its triggers are released anyway, and the process exits.
    const ended = await Promise.race([
      Promise.all(stopped.map((r) => r.done)).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), this.opts.shutdownGraceMs ?? 10_000).unref()),
    ]);
    if (!ended) {
      const left = stopped.filter((r) => this.running.get(r.triggerId) === r);
      this.res.logger.warn({ triggerIds: left.map((r) => r.triggerId), count: left.length }, 'triggers ignored their cancellation; stopping without them');
    }
    await this.outcomes.drain();
    const released = await releaseTriggers(this.res.db.pool, this.triggererId).catch((err: unknown) => {
      this.res.logger.error({ err }, 'could not release triggers');
      return 0;
    });
    await this.job.stop();
    await this.events.close();
    await this.firedHints.close();
    this.blocks.stop();
    this.res.logger.info({ triggererId: this.triggererId, released }, 'triggerer stopped');
  }

  private async claim(): Promise<void> {
    if (this.stopping) return;
    const room = this.opts.capacity - this.running.size;
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
    // Up to a fair share of the unfired triggers of our queues, so replicas share the work.
    const load = await triggererLoad(this.res.db.pool, {
      healthThresholdMs: this.opts.healthThresholdMs,
      queues: this.opts.queues,
      self: this.triggererId,
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
    const fairShare = load.unfired === null || stranded ? Infinity : Math.ceil(load.unfired / Math.max(1, load.alive));
    const batch = this.opts.claimBatch ?? 5000;
    const limit = Math.min(room, batch, Math.max(0, fairShare - this.running.size));
    if (limit <= 0) return;
    const rows = await claimTriggers(this.res.db.pool, {
      triggererId: this.triggererId,
      limit,
      healthThresholdMs: this.opts.healthThresholdMs,
      queues: this.opts.queues,
    });
    for (const row of rows) {
      if (this.running.has(row.id)) continue;
      try {
        const kwargs = this.res.cipher.decrypt(row.kwargs);
        const trigger = this.opts.triggers.create({ type: row.classpath, kwargs, queue: row.queue });
        this.startTrigger(row.id, row.classpath, row.task_instance_id, trigger);
      } catch (err) {
        // Unknown type, undecryptable or invalid kwargs, or a trigger that throws as it starts: the
        // task resumes into its failure path, and the rest of the batch still starts.
        const recorded = recordError(err);
        this.res.logger.warn(
          { triggerId: row.id, triggerType: row.classpath, taskInstanceId: row.task_instance_id, code: recorded.code, reason: recorded.message },
          'trigger cannot run',
        );
        void this.blocks.outside(() => this.record(row.id, { kind: 'failure', error: { code: recorded.code, message: recorded.message } }));
      }
    }
    if (rows.length > 0) this.res.logger.debug({ count: rows.length, running: this.running.size }, 'claimed triggers');
    // A full batch means more may be waiting: claim again at once.
    if (rows.length === limit && limit === batch) this.claimLoop.wake();
  }

  private startTrigger(id: string, type: string, taskInstanceId: string | null, trigger: Trigger): void {
    const entry = new RunningTrigger(id, type, this.res.clock);
    if (trigger.dueAt && trigger.eventAt && this.res.clock === systemClock) {
      const at = trigger.dueAt(); // may throw: then nothing has started
      entry.timer = trigger;
      entry.at = at;
      this.running.set(id, entry);
      this.timers.push(entry);
      return;
    }
    this.running.set(id, entry);
    const scope = { triggerId: id, triggerType: type, taskInstanceId };
    entry.done = this.blocks.run(scope, () => this.runTrigger(entry, trigger)).finally(() => {
      if (this.running.get(id) === entry) this.running.delete(id);
    });
  }

  private async runTrigger(entry: RunningTrigger, trigger: Trigger): Promise<void> {
    const { triggerId: id, type } = entry;
    let outcome: TriggerOutcome | null = null;
    try {
      for await (const raw of trigger.run(entry)) {
        const event = parseInput(TriggerEventSchema, raw, `event of trigger type "${type}"`);
        outcome = event.endTask
          ? { kind: 'event', payload: event.payload, endTask: event.endTask }
          : { kind: 'event', payload: event.payload };
        break; // the first event resumes the task
      }
      if (!outcome && !entry.cancelled) {
        outcome = { kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'the trigger ended without an event' } };
      }
    } catch (err) {
      if (!entry.cancelled) {
        const recorded = recordError(err);
        outcome = { kind: 'failure', error: { code: recorded.code, message: recorded.message } };
        this.res.logger.warn({ triggerId: id, triggerType: type, code: recorded.code }, 'trigger failed');
      }
    } finally {
      try {
        await trigger.cleanup?.();
      } catch (err) {
        this.res.logger.warn({ err, triggerId: id, triggerType: type }, 'trigger cleanup failed');
      }
    }
    // Finished: no longer running here (so sync does not cancel it), whatever the recording takes.
    if (outcome) this.recording.add(id);
    if (this.running.get(id) === entry) this.running.delete(id);
    // Recording is batched work for many triggers: outside this trigger's scope, so a slow flush
    // is not blamed on it.
    if (outcome) {
      const o = outcome;
      await this.blocks.outside(() => this.record(id, o));
    }
  }

  /**
   * Claims again the moment the stalest peer would cross the health threshold, so a dead peer's
   * triggers move within the threshold plus one claim (not plus a whole claim interval).
   */
  private watchPeerExpiry(ms: number | null): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (ms === null || this.stopping) return;
    this.expiryTimer = setTimeout(() => this.claimLoop.wake(), Math.max(0, ms) + 5);
    this.expiryTimer.unref();
  }

  /** Timer triggers whose moment has come: their events are recorded like any other. */
  private fireTimers(due: RunningTrigger[]): void {
    const now = this.res.clock.now();
    for (const entry of due) {
      if (this.running.get(entry.triggerId) !== entry) continue;
      this.running.delete(entry.triggerId);
      let outcome: TriggerOutcome;
      try {
        const event = parseInput(TriggerEventSchema, entry.timer!.eventAt!(now), `event of trigger type "${entry.type}"`);
        outcome = event.endTask ? { kind: 'event', payload: event.payload, endTask: event.endTask } : { kind: 'event', payload: event.payload };
      } catch (err) {
        const recorded = recordError(err);
        outcome = { kind: 'failure', error: { code: recorded.code, message: recorded.message } };
      }
      void this.cleanupTrigger(entry);
      void this.record(entry.triggerId, outcome);
    }
  }

  /** Hands an outcome to the recording batch; until it settles, sync counts the trigger as ours. */
  private async record(triggerId: string, outcome: TriggerOutcome): Promise<void> {
    this.recording.add(triggerId);
    try {
      await this.outcomes.add({ triggerId, outcome });
    } catch {
      // Only when stopping (recording retries through outages): the trigger stays unfired and
      // another replica runs it again.
    } finally {
      this.recording.delete(triggerId);
    }
  }

  private cancel(entry: RunningTrigger, reason: unknown): void {
    entry.cancel(reason);
    if (entry.timer && this.running.get(entry.triggerId) === entry) {
      this.running.delete(entry.triggerId);
      this.timers.noteCancelled();
      void this.cleanupTrigger(entry);
    }
  }

  private async cleanupTrigger(entry: RunningTrigger): Promise<void> {
    try {
      await entry.timer?.cleanup?.();
    } catch (err) {
      this.res.logger.warn({ err, triggerId: entry.triggerId, triggerType: entry.type }, 'trigger cleanup failed');
    }
  }

  /** Records outcomes (first wins), then notifies the scheduler. Retries the batch until PostgreSQL takes it. */
  private async flushOutcomes(items: { triggerId: string; outcome: TriggerOutcome }[]): Promise<boolean[]> {
    while (this.counting) await this.counting.catch(() => undefined);
    this.flushesInFlight++;
    try {
      return await this.recordAndPublish(items);
    } finally {
      if (--this.flushesInFlight === 0) for (const done of this.flushesDone.splice(0)) done();
    }
  }

  private async recordAndPublish(items: { triggerId: string; outcome: TriggerOutcome }[]): Promise<boolean[]> {
    // The outcome must reach PostgreSQL: keep trying through an outage. Only when stopping do we
    // give up; the triggers then stay unfired and another replica re-runs them after takeover.
    const recorded = await retryThroughOutage(() => recordTriggerOutcomes(this.res.db.pool, items), {
      retryable: () => true,
      giveUp: (attempt) => this.stopping && attempt >= 5,
      onRetry: (err, attempt) => this.res.logger.warn({ err, attempt, count: items.length }, 'recording trigger outcomes failed; retrying'),
      baseDelayMs: 50,
      maxDelayMs: 2000,
    });
    if (recorded.length > 0) {
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
    const set = new Set(recorded);
    return items.map((i) => set.has(i.triggerId));
  }

  /** Stops triggers no longer assigned here (task cancelled, timed out or resumed; or taken over). */
  private async sync(): Promise<void> {
    // Even with nothing running: triggers may be assigned here that this replica does not run.
    if (this.stopping) return;
    // Nothing but this replica assigns triggers to it, so when the count matches what it runs
    // (plus outcomes not yet recorded), nothing was taken away: skip fetching and comparing every
    // id of a large replica. Any doubt (a race with a claim or a flush) falls back to the full check.
    if (this.flushesInFlight > 0) await new Promise<void>((r) => this.flushesDone.push(r));
    // Only triggers started before the query can be judged by its answer.
    const issuedAt = Date.now();
    this.counting = assignedTriggerCount(this.res.db.pool, this.triggererId);
    let assignedCount: number;
    try {
      assignedCount = await this.counting;
    } finally {
      this.counting = null;
    }
    const unrecorded = this.outcomes.pending;
    let runningBefore = 0;
    for (const r of this.running.values()) if (r.startedAt < issuedAt && !r.cancelled) runningBefore++;
    if (runningBefore === this.running.size && assignedCount === runningBefore + unrecorded) return;
    const claims = this.claimsStarted;
    const assigned = await assignedTriggerIds(this.res.db.pool, this.triggererId);
    for (const [id, r] of this.running) {
      if (r.startedAt < issuedAt && !assigned.has(id) && !r.cancelled) {
        this.res.logger.info({ triggerId: id, triggerType: r.type }, 'trigger no longer wanted here; cancelling');
        this.cancel(r, new Error('trigger cancelled'));
      }
    }
    // The other way round: assigned here, but neither running nor being recorded. A claim that
    // committed but whose answer was lost with its connection leaves such triggers; nobody else
    // takes them while this replica lives. Hand them back, unless a claim ran meanwhile (its
    // rows may not have started yet when the ids were read).
    if (this.claimInFlight || this.claimsStarted !== claims) return;
    const orphans = [...assigned].filter((id) => !this.running.has(id) && !this.recording.has(id));
    if (orphans.length === 0) return;
    const released = await releaseTriggerIds(this.res.db.pool, this.triggererId, orphans);
    this.res.logger.warn({ count: released }, 'released triggers assigned here that were not running');
    this.claimLoop.wake();
  }
}
