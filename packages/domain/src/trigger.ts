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

/**
 * What the triggerer records on the trigger row when it fires or fails. A failure keeps the
 * trigger's stack (bounded), so the task's error shows where the trigger threw.
 */
const TriggerOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('event'), payload: JsonSchema, endTask: z.enum(['success', 'failed', 'skipped']).optional() }),
  z.object({ kind: z.literal('failure'), error: z.object({ code: z.string(), message: z.string(), stack: z.string().optional() }) }),
]);
export type TriggerOutcome = z.infer<typeof TriggerOutcomeSchema>;

export interface TriggerRunContext {
  triggerId: string;
  clock: Clock;
  /** Aborted when the trigger is cancelled or the triggerer stops. */
  signal: AbortSignal;
  /**
   * Waits `ms` and rejects when the trigger is cancelled. The triggerer provides a version that
   * costs a timer and a promise, not an abort listener per wait: a replica holds 100,000 of them.
   */
  sleep?(ms: number): Promise<void>;
}

/** Waits inside a trigger: `ctx.sleep` where the runner provides it, else the clock with the signal. */
export function triggerSleep(ctx: TriggerRunContext, ms: number): Promise<void> {
  return ctx.sleep ? ctx.sleep(ms) : ctx.clock.sleep(ms, ctx.signal);
}

/** A live trigger. `run()` must never block the event loop: await I/O or timers only. */
export interface Trigger {
  serialize(): SerializedTrigger;
  run(ctx: TriggerRunContext): AsyncIterable<TriggerEvent>;
  cleanup?(): Promise<void> | void;
  /**
   * Optional, for triggers that only wait for a moment: the runner may then hold them in one
   * shared timer queue instead of running `run()` (no generator, promise or timer each), and call
   * `eventAt` when the moment comes. Both must agree with what `run()` would do.
   */
  dueAt?(): number;
  eventAt?(firedAt: number): TriggerEvent;
}

/**
 * A trigger type registered by name in the triggerer (and in workers, to validate deferrals).
 * `TriggerType<object>` holds any type: the registry parses kwargs with the type's own schema
 * before `create`.
 */
export interface TriggerType<K extends object = JsonObject> {
  readonly type: string;
  readonly kwargs: z.ZodType<K>;
  create(kwargs: K): Trigger;
}

export function defineTriggerType<K extends object>(def: TriggerType<K>): TriggerType<K> {
  return def;
}

export type { Json };
