import {
  ExecutionTimeoutError,
  FAIL_METHOD,
  TaskDeferred,
  TriggerFailedError,
  TriggerTimeoutError,
  UnknownCallbackError,
  parseInput,
  type Clock,
  type Json,
  type JsonObject,
  type TaskContext,
  type TaskType,
} from '@deferrable/domain';
import type { TaskInstanceRow } from '@deferrable/db';
import { z } from 'zod';

/** What a run of task code ended with: a result, a deferral, or an error. */
export type RunOutcome = { kind: 'success'; result: Json | undefined } | { kind: 'deferred'; deferral: TaskDeferred } | { kind: 'error'; error: unknown };

// next_kwargs as the worker reads it: the deferral's kwargs, then the event once resumed, or the
// trigger's error when resuming into __fail__. Validated: it came from the database.
const NextKwargsSchema = z
  .object({
    kwargs: z.record(z.string(), z.unknown()).optional(),
    event: z.unknown().optional(),
    error: z.object({ code: z.string(), message: z.string(), stack: z.string().optional() }).optional(),
    triggerId: z.string().nullable().optional(),
  })
  .passthrough();

/**
 * Runs `execute`, or the callback named by next_method with the event, under the execution
 * timeout. Pure of storage: the caller records the outcome.
 */
export async function runTaskCode(args: {
  row: TaskInstanceRow;
  type: TaskType;
  clock: Clock;
  signal: AbortSignal;
  abort: (reason: unknown) => void;
}): Promise<RunOutcome> {
  const { row, type } = args;
  const ctx: TaskContext = {
    taskInstanceId: row.id,
    taskName: row.task_name,
    tryNumber: row.try_number,
    args: type.args ? parseInput(type.args, row.args, `arguments of task "${row.task_name}"`) : row.args,
    signal: args.signal,
    now: () => args.clock.now(),
    defer(options) {
      throw new TaskDeferred(options);
    },
  };

  const call = async (): Promise<Json | undefined> => {
    if (row.next_method === null) return (await type.execute(ctx)) as Json | undefined;
    const next = parseInput(NextKwargsSchema, row.next_kwargs ?? {}, 'next_kwargs');
    if (row.next_method === FAIL_METHOD) {
      const triggerId = next.triggerId ?? null;
      if (next.error?.code === 'TRIGGER_TIMEOUT') throw new TriggerTimeoutError(triggerId);
      // With the frames of the trigger's stack, so the task's error shows where the trigger threw.
      const frames = next.error?.stack?.split('\n').filter((l) => /^\s+at /.test(l)) ?? [];
      throw new TriggerFailedError(triggerId, [next.error?.message ?? 'unknown reason', ...frames].join('\n'));
    }
    const callback = type.callbacks?.[row.next_method];
    if (!callback) throw new UnknownCallbackError(row.task_name, row.next_method);
    return (await callback(ctx, (next.event ?? null) as Json, (next.kwargs ?? {}) as JsonObject)) as Json | undefined;
  };

  const timeoutMs = row.execution_timeout_ms ?? type.executionTimeoutMs ?? null;
  let timer: NodeJS.Timeout | null = null;
  try {
    const work = call();
    const result = timeoutMs
      ? await Promise.race([
          work,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const err = new ExecutionTimeoutError(timeoutMs);
              args.abort(err);
              reject(err);
            }, timeoutMs);
          }),
        ])
      : await work;
    return { kind: 'success', result };
  } catch (err) {
    if (err instanceof TaskDeferred) return { kind: 'deferred', deferral: err };
    return { kind: 'error', error: err };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
