import { z } from 'zod';
import type { Clock } from './clock';
import { JsonSchema, type Json, type JsonObject } from './json';

/** What the database stores for a trigger: a registered type name and its kwargs, never code. */
export interface SerializedTrigger {
  type: string;
  kwargs: JsonObject;
  /** Optional trigger queue; replicas started with a set of queues claim only those. */
  queue?: string | null;
}

/** An event a trigger yields. `endTask` lets a trigger finish the task without a worker. */
export const TriggerEventSchema = z.object({
  payload: JsonSchema,
  endTask: z.enum(['success', 'failed', 'skipped']).optional(),
});
export type TriggerEvent = z.infer<typeof TriggerEventSchema>;

/** What the triggerer records on the trigger row when it fires or fails. */
export const TriggerOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('event'), payload: JsonSchema, endTask: z.enum(['success', 'failed', 'skipped']).optional() }),
  z.object({ kind: z.literal('failure'), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type TriggerOutcome = z.infer<typeof TriggerOutcomeSchema>;

export interface TriggerRunContext {
  triggerId: string;
  clock: Clock;
  /** Aborted when the trigger is cancelled or the triggerer stops. */
  signal: AbortSignal;
}

/** A live trigger. `run()` must never block the event loop: await I/O or timers only. */
export interface Trigger {
  serialize(): SerializedTrigger;
  run(ctx: TriggerRunContext): AsyncIterable<TriggerEvent>;
  cleanup?(): Promise<void> | void;
}

/** A trigger type registered by name in the triggerer (and in workers, to validate deferrals). */
export interface TriggerType<K extends JsonObject = JsonObject> {
  readonly type: string;
  readonly kwargs: z.ZodType<K>;
  create(kwargs: K): Trigger;
}

export function defineTriggerType<K extends JsonObject>(def: TriggerType<K>): TriggerType<K> {
  return def;
}

export type { Json };
