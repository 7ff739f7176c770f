import { z } from 'zod';
import { UnknownCallbackError } from './errors';
import { JsonObjectSchema, parseInput, type Json, type JsonObject } from './json';
import type { RetryPolicy } from './retry';
import type { Trigger } from './trigger';

export interface DeferOptions {
  trigger: Trigger;
  /** Name of the callback (in the task type's `callbacks`) that resumes with the event. */
  method: string;
  /** Extra arguments handed to the callback next to the event. */
  kwargs?: JsonObject;
  /** How long the deferral may wait, in ms, before the task resumes with a TriggerTimeoutError. */
  timeoutMs?: number;
}

/**
 * Control flow, not failure: `ctx.defer()` throws this so that the task's code stops where it is
 * and the worker records the deferral (as Airflow's TaskDeferred). Never a DeferrableError.
 */
export class TaskDeferred {
  constructor(readonly options: DeferOptions) {}
}

export interface TaskContext<A = unknown> {
  readonly taskInstanceId: string;
  readonly taskName: string;
  readonly tryNumber: number;
  readonly args: A;
  /** Aborted on execution timeout, on a lost heartbeat and on worker shutdown. */
  readonly signal: AbortSignal;
  now(): number;
  /** Hands a trigger to the triggerer and frees this worker slot. Never returns. */
  defer(options: DeferOptions): never;
}

/** What task code may return: a JSON value stored as the result, or nothing. */
export type TaskReturn = Json | void | undefined;

export type TaskCallback<A> = (ctx: TaskContext<A>, event: Json, kwargs: JsonObject) => Promise<TaskReturn> | TaskReturn;

// oxlint-disable-next-line typescript/no-explicit-any -- the default holds tasks of every argument type (callbacks make TaskType<A> invariant in A)
export interface TaskType<A = any> {
  readonly name: string;
  /** Validates the arguments when a task is enqueued and again before it runs. */
  readonly args?: z.ZodType<A>;
  execute(ctx: TaskContext<A>): Promise<TaskReturn> | TaskReturn;
  readonly callbacks?: Record<string, TaskCallback<A>>;
  readonly retry?: Partial<RetryPolicy>;
  readonly executionTimeoutMs?: number;
  /** The queue its instances run on unless a request names another (default `default`). */
  readonly queue?: string;
  /** Other queues a request may name; any other queue is refused at enqueue. */
  readonly queues?: readonly string[];
  /** Default priority of its instances (higher runs first). */
  readonly priority?: number;
}

export function defineTask<A>(def: TaskType<A>): TaskType<A> {
  return def;
}

/** The reserved callback name that raises the trigger's timeout or failure inside the task. */
export const FAIL_METHOD = '__fail__';

/** The longest a deferral may wait: as long as a run's execution timeout may be (7 days). */
export const MAX_DEFER_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

/**
 * `ctx.defer()`'s options, checked when the task defers, as an enqueue request is checked when it
 * enters: a bad option fails the task at once with INVALID_INPUT naming it. Strict, so a misspelt
 * option (`timeout` for `timeoutMs`) is refused rather than ignored.
 */
const DeferOptionsSchema = z
  .object({
    trigger: z.custom<Trigger>(
      (t) => typeof t === 'object' && t !== null && typeof (t as { serialize?: unknown }).serialize === 'function',
      'must be a trigger (an object with serialize())',
    ),
    method: z.string().min(1).max(200),
    kwargs: JsonObjectSchema.optional(),
    timeoutMs: z.number().int().min(1).max(MAX_DEFER_TIMEOUT_MS).optional(),
  })
  .strict();

/** The deferral options of a task of this type, valid, naming one of its callbacks; throws a typed error otherwise. */
export function parseDeferOptions(type: Pick<TaskType, 'name' | 'callbacks'>, options: unknown): DeferOptions {
  const parsed = parseInput(DeferOptionsSchema, options, `deferral options of task "${type.name}"`);
  // Own properties only: `toString` is no callback, and neither is the reserved __fail__.
  const callbacks = type.callbacks ?? {};
  if (parsed.method === FAIL_METHOD || !Object.hasOwn(callbacks, parsed.method) || typeof callbacks[parsed.method] !== 'function') {
    throw new UnknownCallbackError(type.name, parsed.method);
  }
  return parsed;
}
