/**
 * What the triggerer's in-process tests share: a test database and Redis prefix, resources whose
 * logger writes to an array, and deferred task instances with their triggers (the rows a worker
 * writes when a task defers).
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createKwargsCipher, deferRun, dispatchIds, insertTaskInstance, registerJob, startRun } from '@deferrable/db';
import {
  defineTriggerType,
  JsonSchema,
  triggerSleep,
  type Clock,
  type ClockTimer,
  type JsonObject,
  type TriggerEvent,
  type TriggerRunContext,
  type TriggerType,
} from '@deferrable/domain';
import { createLogger } from '@deferrable/logging';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { builtinTriggerRegistry, systemClock, type TriggerRegistry } from '@deferrable/triggers';
import { z } from 'zod';
import type { Resources } from '../../resources';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Harness {
  env: TestEnv;
  res: Resources;
  /** Every line the resources' logger wrote, parsed. */
  logs: LogLine[];
  cleanup(): Promise<void>;
}

export async function createHarness(label: string, clock: Clock = systemClock): Promise<Harness> {
  const env = await createTestEnv(label);
  const logs: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) logs.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  const res: Resources = {
    db: env.db,
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    prefix: env.prefix,
    clock,
    logger: createLogger({ name: 'triggerer-test', level: 'debug', destination: stream }),
    cipher: createKwargsCipher([DEV_KWARGS_KEY]),
  };
  return { env, res, logs, cleanup: () => env.cleanup() };
}

const ACTOR = 'triggerer-test';

/** A task instance deferred on a new trigger of this type and kwargs (unassigned, unfired). */
export async function deferredTask(
  res: Resources,
  trigger: { type: string; kwargs: JsonObject; queue?: string | null },
): Promise<{ taskInstanceId: string; triggerId: string }> {
  const pool = res.db.pool;
  const { id } = await insertTaskInstance(pool, {
    id: randomUUID(),
    taskName: 'test.task',
    args: {},
    queue: 'default',
    priority: 0,
    maxTries: 1,
    retryDelayMs: 1000,
    retryBackoff: 2,
    retryMaxDelayMs: 60_000,
    executionTimeoutMs: null,
    runAfter: null,
    idempotencyKey: null,
    actor: ACTOR,
  });
  const [d] = await dispatchIds(pool, [id], ACTOR);
  const workerId = randomUUID();
  await startRun(pool, { id, tryNumber: d!.try_number, dispatchAttempt: d!.dispatch_attempt, workerId, actor: ACTOR });
  const triggerId = randomUUID();
  const ok = await deferRun(
    pool,
    { id, tryNumber: d!.try_number, dispatchAttempt: d!.dispatch_attempt, workerId, actor: ACTOR },
    {
      trigger: { id: triggerId, classpath: trigger.type, kwargsToken: res.cipher.encrypt(trigger.kwargs), queue: trigger.queue ?? null },
      nextMethod: 'resume',
      nextKwargs: {},
      timeoutMs: null,
    },
  );
  if (!ok) throw new Error('the test task did not defer');
  return { taskInstanceId: id, triggerId };
}

/** A job row of a live triggerer (a peer), reporting `load` running triggers. */
export async function peerTriggerer(res: Resources, opts: { id?: string; queues?: string[]; load?: number } = {}): Promise<string> {
  const id = opts.id ?? randomUUID();
  await registerJob(res.db.pool, { id, jobType: 'triggerer', hostname: 'peer', pid: 1, capacity: 1000, queues: opts.queues ?? ['default'] });
  if (opts.load) await res.db.pool.query('UPDATE job SET load = $2 WHERE id = $1', [id, opts.load]);
  return id;
}

export async function triggerRow(
  res: Resources,
  id: string,
): Promise<{ triggerer_id: string | null; event: Record<string, unknown> | null; fired_at: Date | null }> {
  const { rows } = await res.db.pool.query('SELECT triggerer_id, event, fired_at FROM trigger WHERE id = $1', [id]);
  if (!rows[0]) throw new Error(`no trigger ${id}`);
  return rows[0] as { triggerer_id: string | null; event: Record<string, unknown> | null; fired_at: Date | null };
}

const AnyKwargs = z.record(z.string(), JsonSchema) as z.ZodType<JsonObject>;

/** Trigger types for the runner's tests; `cleanups` counts the cleanups each trigger id ran. */
export function testTriggers(cleanups = new Map<string, number>()): TriggerRegistry {
  const counted = (ctx: { triggerId: string }) => () => {
    cleanups.set(ctx.triggerId, (cleanups.get(ctx.triggerId) ?? 0) + 1);
  };
  const type = (name: string, run: (kwargs: JsonObject, ctx: TriggerRunContext) => AsyncIterable<TriggerEvent>): TriggerType<JsonObject> =>
    defineTriggerType({
      type: name,
      kwargs: AnyKwargs,
      create: (kwargs) => {
        let cleanup = () => {};
        return {
          serialize: () => ({ type: name, kwargs }),
          run: (ctx) => {
            cleanup = counted(ctx);
            return run(kwargs, ctx);
          },
          cleanup: () => cleanup(),
        };
      },
    });
  return (
    builtinTriggerRegistry()
      // Fires at once with its kwargs as the event (payload, endTask).
      .register(
        type('test.now', async function* (kwargs) {
          yield kwargs as TriggerEvent;
        }),
      )
      // Waits until cancelled.
      .register(
        // oxlint-disable-next-line require-yield -- a trigger that waits until cancelled
        type('test.forever', async function* (_kwargs, ctx) {
          await triggerSleep(ctx, 3_600_000);
        }),
      )
      // Ends without an event.
      .register(type('test.silent', async function* () {}))
      // Throws at once.
      .register(
        // oxlint-disable-next-line require-yield -- a trigger that throws before any event
        type('test.throws', async function* () {
          throw new Error('the trigger exploded');
        }),
      )
      // Fires a payload of `bytes` characters.
      .register(
        type('test.big', async function* (kwargs) {
          yield { payload: 'x'.repeat(Number(kwargs.bytes)) };
        }),
      )
      // Fires a payload with a lone UTF-16 surrogate, which PostgreSQL's jsonb refuses.
      .register(
        type('test.surrogate', async function* () {
          yield { payload: { s: '\ud800' } };
        }),
      )
  );
}

/** A clock that moves only when the test says so; its timers run inside `advance`, in due order. */
export class FakeClock implements Clock {
  private readonly timers = new Set<{ at: number; fn: () => void }>();

  constructor(private t: number = Date.now()) {}

  now(): number {
    return this.t;
  }

  /** Timers started and neither run nor cancelled. */
  get pending(): number {
    return this.timers.size;
  }

  setTimer(ms: number, fn: () => void): ClockTimer {
    const timer = { at: this.t + Math.max(0, ms), fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        timer.cancel();
        reject(signal!.reason);
      };
      const timer = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  advance(ms: number): void {
    this.t += ms;
    for (;;) {
      let next: { at: number; fn: () => void } | undefined;
      for (const timer of this.timers) if (timer.at <= this.t && (!next || timer.at < next.at)) next = timer;
      if (!next) return;
      this.timers.delete(next);
      next.fn();
    }
  }
}
