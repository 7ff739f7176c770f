import { assertJsonSize, recordError, TriggerEventSchema, parseInput, type Trigger, type TriggerOutcome } from '@deferrable/domain';
import type { ClaimedTriggerRow } from '@deferrable/db';
import type { TriggerRegistry } from '@deferrable/triggers';
import type { Resources } from '../resources';
import { BlockDetector } from './block-detector';
import { RunningTrigger } from './context';
import type { OutcomeRecorder } from './outcome-recorder';
import { TimerQueue } from './timer-queue';

export interface TriggerRunnerOptions {
  triggers: TriggerRegistry;
  /** A trigger callback that holds the event loop this long is named in the logs (0: off). */
  blockWarnMs: number;
  /** Largest event payload, as JSON bytes; a larger one fails the trigger with PAYLOAD_TOO_LARGE. */
  maxPayloadBytes: number;
}

/**
 * Runs the claimed triggers, all concurrently on this event loop: starts each (timer triggers into
 * the shared timer queue, the others through `run()` in their block-detector scope), turns the
 * first event or the failure into an outcome for the recorder, cancels, and cleans up.
 */
export class TriggerRunner {
  readonly blocks: BlockDetector;
  private readonly running = new Map<string, RunningTrigger>();
  private readonly timers: TimerQueue<RunningTrigger>;

  constructor(
    private readonly res: Resources,
    private readonly opts: TriggerRunnerOptions,
    private readonly recorder: OutcomeRecorder,
  ) {
    this.timers = new TimerQueue<RunningTrigger>(res.clock, (due) => this.fireTimers(due));
    this.blocks = new BlockDetector(opts.blockWarnMs, (b) =>
      res.logger.warn(
        { triggerId: b.triggerId, triggerType: b.triggerType, taskInstanceId: b.taskInstanceId, blockedMs: b.blockedMs },
        'a trigger blocked the event loop; triggers must only await I/O or timers',
      ),
    );
  }

  get size(): number {
    return this.running.size;
  }

  /** Timer triggers held in the shared timer queue (cancelled ones may linger until compacted). */
  get timerCount(): number {
    return this.timers.size;
  }

  ids(): string[] {
    return [...this.running.keys()];
  }

  has(triggerId: string): boolean {
    return this.running.has(triggerId);
  }

  /** The running triggers, for the syncer to compare with what is assigned here. */
  entries(): IterableIterator<[string, RunningTrigger]> {
    return this.running.entries();
  }

  start(): void {
    this.blocks.start();
  }

  /** Starts claimed triggers; one that cannot start becomes a failure outcome, and the rest still start. */
  startClaimed(rows: readonly ClaimedTriggerRow[]): void {
    for (const row of rows) {
      if (this.running.has(row.id)) continue;
      try {
        const kwargs = this.res.cipher.decrypt(row.kwargs);
        const trigger = this.opts.triggers.create({ type: row.classpath, kwargs, queue: row.queue });
        this.startTrigger(row.id, row.classpath, row.task_instance_id, trigger);
      } catch (err) {
        // Unknown type, undecryptable or invalid kwargs, or a trigger that throws as it starts: the
        // task resumes into its failure path.
        const outcome = failureOutcome(err);
        this.res.logger.warn(
          { triggerId: row.id, triggerType: row.classpath, taskInstanceId: row.task_instance_id, code: outcome.error.code, reason: outcome.error.message },
          'trigger cannot run',
        );
        void this.blocks.outside(() => this.recorder.record(row.id, outcome));
      }
    }
  }

  /** Cancels one trigger: its `run()` is aborted, or its timer dropped and its cleanup run. */
  cancel(entry: RunningTrigger, reason: unknown): void {
    entry.cancel(reason);
    if (entry.timer && this.running.get(entry.triggerId) === entry) {
      this.running.delete(entry.triggerId);
      this.timers.noteCancelled();
      void this.cleanupTrigger(entry);
    }
  }

  /**
   * Cancels every trigger and waits up to `graceMs` for them to end. A trigger that ignores its
   * signal must not hold a stop (and with it the hand-back) for ever: past the grace period the
   * stop goes on without it.
   */
  async stop(graceMs: number): Promise<void> {
    const stopped = [...this.running.values()];
    for (const r of stopped) this.cancel(r, new Error('triggerer stopping'));
    this.timers.stop();
    const ended = await Promise.race([
      Promise.all(stopped.map((r) => r.done)).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
    ]);
    if (!ended) {
      const left = stopped.filter((r) => this.running.get(r.triggerId) === r);
      this.res.logger.warn({ triggerIds: left.map((r) => r.triggerId), count: left.length }, 'triggers ignored their cancellation; stopping without them');
    }
  }

  /** Once the recorder has drained: no more block reports. */
  close(): void {
    this.blocks.stop();
  }

  private startTrigger(id: string, type: string, taskInstanceId: string | null, trigger: Trigger): void {
    const entry = new RunningTrigger(id, type, this.res.clock);
    if (trigger.dueAt && trigger.eventAt) {
      const at = trigger.dueAt(); // may throw: then nothing has started
      entry.timer = trigger;
      entry.at = at;
      this.running.set(id, entry);
      this.timers.push(entry);
      return;
    }
    this.running.set(id, entry);
    const scope = { triggerId: id, triggerType: type, taskInstanceId };
    entry.done = this.blocks
      .run(scope, () => this.run(entry, trigger, taskInstanceId))
      .finally(() => {
        if (this.running.get(id) === entry) this.running.delete(id);
      });
  }

  private async run(entry: RunningTrigger, trigger: Trigger, taskInstanceId: string | null): Promise<void> {
    const { triggerId: id, type } = entry;
    let outcome: TriggerOutcome | null = null;
    try {
      for await (const raw of trigger.run(entry)) {
        outcome = this.eventOutcome(type, raw);
        break; // the first event resumes the task
      }
      if (!outcome && !entry.cancelled) {
        outcome = { kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'the trigger ended without an event' } };
        this.res.logger.warn({ triggerId: id, triggerType: type, taskInstanceId }, 'trigger ended without an event');
      }
    } catch (err) {
      if (!entry.cancelled) {
        const failure = failureOutcome(err);
        outcome = failure;
        const { code, message: reason, stack } = failure.error;
        this.res.logger.warn({ triggerId: id, triggerType: type, taskInstanceId, code, reason, stack }, 'trigger failed');
      }
    } finally {
      try {
        await trigger.cleanup?.();
      } catch (err) {
        this.res.logger.warn({ err, triggerId: id, triggerType: type }, 'trigger cleanup failed');
      }
    }
    // Recording is batched work for many triggers: outside this trigger's scope, so a slow flush
    // is not blamed on it. The recorder counts it as ours from this call on, so it is no longer
    // running here (and sync does not cancel it), whatever the recording takes.
    const o = outcome;
    const recording = o ? this.blocks.outside(() => this.recorder.record(id, o)) : null;
    if (this.running.get(id) === entry) this.running.delete(id);
    await recording;
  }

  private eventOutcome(type: string, raw: unknown): TriggerOutcome {
    const event = parseInput(TriggerEventSchema, raw, `event of trigger type "${type}"`);
    assertJsonSize(event.payload, this.opts.maxPayloadBytes, `the event payload of trigger type "${type}"`);
    return event.endTask ? { kind: 'event', payload: event.payload, endTask: event.endTask } : { kind: 'event', payload: event.payload };
  }

  /** Timer triggers whose moment has come: their events are recorded like any other. */
  private fireTimers(due: RunningTrigger[]): void {
    const now = this.res.clock.now();
    for (const entry of due) {
      if (this.running.get(entry.triggerId) !== entry) continue;
      this.running.delete(entry.triggerId);
      let outcome: TriggerOutcome;
      try {
        outcome = this.eventOutcome(entry.type, entry.timer!.eventAt!(now));
      } catch (err) {
        const failure = failureOutcome(err);
        outcome = failure;
        // No task instance id here (a timer entry keeps none): the recorder's line names it.
        const { code, message: reason, stack } = failure.error;
        this.res.logger.warn({ triggerId: entry.triggerId, triggerType: entry.type, code, reason, stack }, 'trigger failed');
      }
      void this.cleanupTrigger(entry);
      void this.recorder.record(entry.triggerId, outcome);
    }
  }

  private async cleanupTrigger(entry: RunningTrigger): Promise<void> {
    try {
      await entry.timer?.cleanup?.();
    } catch (err) {
      this.res.logger.warn({ err, triggerId: entry.triggerId, triggerType: entry.type }, 'trigger cleanup failed');
    }
  }
}

/** Longest trigger stack kept in a failure outcome (and logged). */
const MAX_STACK = 4000;

/** Strings that go into jsonb: no NUL, no lone UTF-16 surrogate (both refused). */
const storable = (s: string) => s.replaceAll('\u0000', '\\u0000').replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

/** A trigger's error as a failure outcome: its code and message, and its stack, bounded. */
function failureOutcome(err: unknown): Extract<TriggerOutcome, { kind: 'failure' }> {
  const recorded = recordError(err);
  const stack = err instanceof Error && typeof err.stack === 'string' ? storable(err.stack.slice(0, MAX_STACK)) : undefined;
  return {
    kind: 'failure',
    error: stack ? { code: recorded.code, message: storable(recorded.message), stack } : { code: recorded.code, message: storable(recorded.message) },
  };
}
