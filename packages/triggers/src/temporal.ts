import {
  defineTriggerType,
  JsonObjectSchema,
  triggerSleep,
  type JsonObject,
  type Trigger,
  type TriggerEvent,
  type TriggerRunContext,
} from '@deferrable/domain';
import { z } from 'zod';

export const DATETIME_TRIGGER = 'datetime';

const DateTimeKwargs = z.object({
  /** ISO 8601 instant at which the trigger fires. */
  moment: z.iso.datetime({ offset: true }),
  /** Optional payload echoed in the event. */
  payload: JsonObjectSchema.optional(),
});

/** Fires once at an absolute moment (Airflow's DateTimeTrigger). */
export class DateTimeTrigger implements Trigger {
  constructor(
    readonly moment: Date,
    readonly payload?: JsonObject,
  ) {}

  serialize() {
    const kwargs: { moment: string; payload?: JsonObject } = { moment: this.moment.toISOString() };
    if (this.payload) kwargs.payload = this.payload;
    return { type: DATETIME_TRIGGER, kwargs };
  }

  async *run(ctx: TriggerRunContext): AsyncIterable<TriggerEvent> {
    const due = this.moment.getTime();
    // setTimeout cannot wait longer than 2^31-1 ms; wait in chunks for far moments.
    for (let left = due - ctx.clock.now(); left > 0; left = due - ctx.clock.now()) {
      await triggerSleep(ctx, Math.min(left, 2 ** 31 - 1));
    }
    yield this.eventAt(ctx.clock.now());
  }

  dueAt(): number {
    return this.moment.getTime();
  }

  eventAt(firedAt: number): TriggerEvent {
    return { payload: { moment: this.moment.toISOString(), firedAt: new Date(firedAt).toISOString(), ...this.payload } };
  }
}

export const dateTimeTriggerType = defineTriggerType({
  type: DATETIME_TRIGGER,
  kwargs: DateTimeKwargs,
  create: (kwargs) => new DateTimeTrigger(new Date(kwargs.moment), kwargs.payload),
});

/**
 * Fires after a delay from now (Airflow's TimeDeltaTrigger). Like Airflow's, it serialises as a
 * DateTimeTrigger: the moment is fixed when the task defers, so a triggerer restart does not
 * restart the wait.
 */
export class TimeDeltaTrigger extends DateTimeTrigger {
  constructor(delayMs: number, now: number, payload?: JsonObject) {
    super(new Date(now + delayMs), payload);
  }
}
