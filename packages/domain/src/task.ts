import { z } from 'zod';
import type { Json, JsonObject } from './json';
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
