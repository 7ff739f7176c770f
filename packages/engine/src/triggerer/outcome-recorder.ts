import { MAX_FIRED_HINT_IDS, recordError, type TriggerOutcome } from '@deferrable/domain';
import { isTransientDbError, recordTriggerOutcomeRows, type RecordedTriggerRow } from '@deferrable/db';
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
      // Given up on an outage while stopping, or refused even as a failure: the trigger stays
      // unfired and another replica runs it again (both logged where they happen).
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
    let recorded: RecordedTriggerRow[];
    let used = items;
    try {
      recorded = await this.write(items);
    } catch (err) {
      // Given up on an outage (stopping): the triggers stay unfired; another replica re-runs them.
      if (isTransientDbError(err)) throw err;
      // PostgreSQL refused the statement: one item may be at fault. Recorded one at a time, the
      // others go through, and the one refused resumes its task into its failure path.
      // Its message only: the error's other fields may quote the statement's data (payloads).
      this.res.logger.warn({ reason: recordError(err).message, count: items.length }, 'recording trigger outcomes refused; recording them one at a time');
      recorded = [];
      used = [];
      for (const item of items) {
        const alone = await this.recordAlone(item);
        recorded.push(...alone.rows);
        used.push(alone.item);
      }
    }
    if (recorded.length > 0) await this.publish(recorded, used);
    const set = new Set(recorded.map((r) => r.id));
    return items.map((i) => set.has(i.triggerId));
  }

  /** One outcome; if PostgreSQL refuses it, a failure saying why is recorded in its place. */
  private async recordAlone(item: OutcomeItem): Promise<{ rows: RecordedTriggerRow[]; item: OutcomeItem }> {
    try {
      return { rows: await this.write([item]), item };
    } catch (err) {
      if (isTransientDbError(err)) throw err;
      const { message, detail } = refusal(err);
      this.res.logger.error({ triggerId: item.triggerId, reason: message }, 'trigger outcome refused by PostgreSQL; recording a failure instead');
      // The detail (kept for the task, not logged) says what PostgreSQL found wrong in the data.
      const error = {
        code: 'TRIGGER_FAILED',
        message: `the trigger's event could not be recorded: PostgreSQL refused it (${message}${detail ? `: ${detail}` : ''})`,
      };
      const failure: OutcomeItem = { triggerId: item.triggerId, outcome: { kind: 'failure', error } };
      const rows = await this.write([failure]).catch((e: unknown) => {
        if (isTransientDbError(e)) throw e;
        this.res.logger.error({ triggerId: item.triggerId, reason: recordError(e).message }, 'not even a failure could be recorded for the trigger');
        return [];
      });
      return { rows, item: failure };
    }
  }

  /**
   * Records outcomes (first wins). The outcome must reach PostgreSQL: a transient error (the
   * database unreachable or restarting) is retried through the outage; only when stopping do we
   * give up. Any other error is thrown at once: retrying a refused statement would never end.
   */
  private write(items: OutcomeItem[]): Promise<RecordedTriggerRow[]> {
    return retryThroughOutage(() => recordTriggerOutcomeRows(this.res.db.pool, items), {
      retryable: isTransientDbError,
      giveUp: (attempt) => this.stopping && attempt >= 5,
      onRetry: (err, attempt) => this.res.logger.warn({ err, attempt, count: items.length }, 'recording trigger outcomes failed; retrying'),
      baseDelayMs: 50,
      maxDelayMs: 2000,
    });
  }

  /** `items`: the outcomes as written, the first of each trigger being the one recorded. */
  private async publish(recorded: RecordedTriggerRow[], items: OutcomeItem[]): Promise<void> {
    const ids = recorded.map((r) => r.id);
    // The hint lets schedulers apply the events at once, before their jobs reach the front of
    // the trigger-event queue; the jobs follow. A lost publish of either is recovered by the
    // scheduler's backstop scan of fired triggers.
    for (let i = 0; i < ids.length; i += MAX_FIRED_HINT_IDS) {
      this.firedHints.publishNow(ids.slice(i, i + MAX_FIRED_HINT_IDS).join(','));
    }
    await this.events
      .addBulk(
        undefined,
        ids.map((triggerId) => ({ triggerId })),
      )
      .catch((err: unknown) => this.res.logger.warn({ err, count: ids.length }, 'publishing trigger events failed; the scheduler backstop will apply them'));
    // One line per trigger, with the task it resumes (from the recording statement).
    const outcomes = new Map<string, TriggerOutcome>();
    for (const i of items) if (!outcomes.has(i.triggerId)) outcomes.set(i.triggerId, i.outcome);
    for (const r of recorded) {
      const o = outcomes.get(r.id);
      const ids = { triggerId: r.id, triggerType: r.classpath, taskInstanceId: r.task_instance_id };
      if (o?.kind === 'failure') this.res.logger.info({ ...ids, code: o.error.code }, 'trigger failure recorded');
      else this.res.logger.info(o?.endTask ? { ...ids, endTask: o.endTask } : ids, 'trigger fired');
    }
  }
}

/** What PostgreSQL said when it refused a statement, bounded and without NUL characters. */
function refusal(err: unknown): { message: string; detail: string | null } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { message?: unknown; detail?: unknown };
  const clean = (v: unknown, max: number) => (typeof v === 'string' && v ? v.replaceAll('\u0000', '\\u0000').slice(0, max) : null);
  return { message: clean(e.message, 500) ?? recordError(err).message, detail: clean(e.detail, 300) };
}
