import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidInputError, UnknownTriggerTypeError, type Clock, type Trigger, type TriggerEvent, type TriggerRunContext } from '@deferrable/domain';
import { systemClock } from './clock';
import { FILE_TRIGGER, FileTrigger, fileTriggerType } from './file';
import { builtinTriggerRegistry } from './index';
import { TriggerRegistry } from './registry';
import { DATETIME_TRIGGER, DateTimeTrigger, dateTimeTriggerType, TimeDeltaTrigger } from './temporal';

/** A clock that only moves when the test says so. */
class FakeClock implements Clock {
  /** Every sleep asked for, in ms, in order. */
  readonly requested: number[] = [];
  private readonly sleepers = new Set<{ until: number; wake(): void }>();

  constructor(private t: number) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.requested.push(ms);
    return new Promise<void>((resolve, reject) => {
      const sleeper = {
        until: this.t + Math.max(0, ms),
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          this.sleepers.delete(sleeper);
          resolve();
        },
      };
      const onAbort = () => {
        this.sleepers.delete(sleeper);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.add(sleeper);
    });
  }

  setTimer(ms: number, fn: () => void): { cancel(): void } {
    const sleeper = {
      until: this.t + Math.max(0, ms),
      wake: () => {
        this.sleepers.delete(sleeper);
        fn();
      },
    };
    this.sleepers.add(sleeper);
    return { cancel: () => this.sleepers.delete(sleeper) };
  }

  get pending(): number {
    return this.sleepers.size;
  }

  /** Moves time forward, wakes the sleepers that are due and lets their continuations run. */
  async advance(ms: number): Promise<void> {
    this.t += ms;
    for (const s of Array.from(this.sleepers)) if (s.until <= this.t) s.wake();
    await settle();
  }
}

/** Lets pending promise continuations (and one macrotask turn) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const T0 = Date.parse('2026-11-25T12:00:00.000Z');

function context(clock: Clock, signal: AbortSignal = new AbortController().signal): TriggerRunContext {
  return { triggerId: 'trigger-1', clock, signal };
}

/** Starts the trigger and reports whether its first event has arrived yet. */
function start(trigger: Trigger, ctx: TriggerRunContext) {
  const iterator = trigger.run(ctx)[Symbol.asyncIterator]();
  const state: { settled: boolean; value?: IteratorResult<TriggerEvent>; error?: unknown } = { settled: false };
  const first = iterator.next().then(
    (value) => {
      state.settled = true;
      state.value = value;
      return value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
      throw error;
    },
  );
  first.catch(() => undefined);
  return { iterator, first, state };
}

describe('DateTimeTrigger', () => {
  it('fires at its moment, not before, with the moment and firing time in the payload', async () => {
    const clock = new FakeClock(T0);
    const moment = new Date(T0 + 60_000);
    const run = start(new DateTimeTrigger(moment, { job: 'nightly' }), context(clock));
    await settle();
    expect(run.state.settled).toBe(false);
    expect(clock.requested).toEqual([60_000]);

    await clock.advance(59_999);
    expect(run.state.settled).toBe(false);
    await clock.advance(1);
    expect(run.state.settled).toBe(true);
    expect(run.state.value).toEqual({
      done: false,
      value: { payload: { moment: moment.toISOString(), firedAt: moment.toISOString(), job: 'nightly' } },
    });
    // One event, then the trigger is done.
    expect(await run.iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('fires at once for a moment in the past, without sleeping', async () => {
    const clock = new FakeClock(T0);
    const run = start(new DateTimeTrigger(new Date(T0 - 1000)), context(clock));
    const { value } = await run.first;
    expect(value).toEqual({ payload: { moment: new Date(T0 - 1000).toISOString(), firedAt: new Date(T0).toISOString() } });
    expect(clock.requested).toEqual([]);
  });

  it('waits for far moments in chunks that setTimeout accepts', async () => {
    const clock = new FakeClock(T0);
    const far = 40 * 24 * 3600 * 1000; // 40 days, more than 2^31-1 ms
    const run = start(new DateTimeTrigger(new Date(T0 + far)), context(clock));
    await settle();
    expect(clock.requested).toEqual([2 ** 31 - 1]);
    await clock.advance(2 ** 31 - 1);
    expect(run.state.settled).toBe(false);
    expect(clock.requested).toEqual([2 ** 31 - 1, far - (2 ** 31 - 1)]);
    await clock.advance(far - (2 ** 31 - 1));
    expect(run.state.settled).toBe(true);
  });

  it('keeps waiting if the clock wakes it early', async () => {
    const clock = new FakeClock(T0);
    const run = start(new DateTimeTrigger(new Date(T0 + 1000)), context(clock));
    await settle();
    // Wake the sleeper at 400 ms (as a coarse timer might), then let time reach the moment.
    await clock.advance(400);
    for (const s of Array.from((clock as unknown as { sleepers: Set<{ wake(): void }> }).sleepers)) s.wake();
    await settle();
    expect(run.state.settled).toBe(false);
    expect(clock.requested).toEqual([1000, 600]);
    await clock.advance(600);
    expect(run.state.settled).toBe(true);
  });

  it('is cancelled through its AbortSignal while waiting', async () => {
    const clock = new FakeClock(T0);
    const controller = new AbortController();
    const run = start(new DateTimeTrigger(new Date(T0 + 60_000)), context(clock, controller.signal));
    await settle();
    expect(clock.pending).toBe(1);
    const reason = new Error('trigger cancelled');
    controller.abort(reason);
    await expect(run.first).rejects.toBe(reason);
    expect(clock.pending).toBe(0);
    // Time passing afterwards changes nothing.
    await clock.advance(120_000);
    expect(run.state.error).toBe(reason);
  });

  it('does not start when its signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stopping'));
    const run = start(new DateTimeTrigger(new Date(T0 + 1000)), context(new FakeClock(T0), controller.signal));
    await expect(run.first).rejects.toThrow('stopping');
  });

  it('is cancellable on the real clock too', async () => {
    const controller = new AbortController();
    const run = start(new DateTimeTrigger(new Date(Date.now() + 60_000)), context(systemClock, controller.signal));
    await sleep(5);
    controller.abort();
    await expect(run.first).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('serialises as its type and an ISO moment', () => {
    const moment = new Date(T0 + 5);
    expect(new DateTimeTrigger(moment).serialize()).toEqual({ type: DATETIME_TRIGGER, kwargs: { moment: moment.toISOString() } });
    expect(new DateTimeTrigger(moment, { a: 1 }).serialize()).toEqual({
      type: 'datetime',
      kwargs: { moment: moment.toISOString(), payload: { a: 1 } },
    });
  });
});

describe('TimeDeltaTrigger', () => {
  it('serialises as a datetime trigger whose moment is now + delay', () => {
    const t = new TimeDeltaTrigger(5000, T0, { why: 'cool-down' });
    expect(t).toBeInstanceOf(DateTimeTrigger);
    expect(t.serialize()).toEqual({
      type: DATETIME_TRIGGER,
      kwargs: { moment: new Date(T0 + 5000).toISOString(), payload: { why: 'cool-down' } },
    });
  });

  it('a triggerer restart does not restart the wait: the stored moment is absolute', async () => {
    const serialized = new TimeDeltaTrigger(5000, T0).serialize();
    // The triggerer rebuilds it 3 s later (after a restart) and it fires 2 s after that.
    const clock = new FakeClock(T0 + 3000);
    const rebuilt = builtinTriggerRegistry().create(serialized);
    const run = start(rebuilt, context(clock));
    await settle();
    expect(clock.requested).toEqual([2000]);
    await clock.advance(2000);
    expect(run.state.value?.value).toEqual({ payload: { moment: new Date(T0 + 5000).toISOString(), firedAt: new Date(T0 + 5000).toISOString() } });
  });
});

describe('FileTrigger', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'dft-file-trigger-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('fires once the file appears (fake clock: one stat per poll)', async () => {
    const file = path.join(dir, 'arrives.csv');
    const clock = new FakeClock(T0);
    const run = start(new FileTrigger(file, 250), context(clock));
    // The stat is real I/O: wait until the trigger sleeps again before moving the clock.
    const polled = async () => {
      for (let i = 0; i < 500 && clock.pending === 0 && !run.state.settled; i++) await sleep(1);
    };
    for (let i = 0; i < 3; i++) {
      await polled();
      expect(run.state.settled).toBe(false);
      expect(clock.pending).toBe(1);
      await clock.advance(250);
    }
    await polled();
    expect(clock.requested).toEqual([250, 250, 250, 250]);
    writeFileSync(file, 'a,b\n1,2\n');
    await clock.advance(250);
    for (let i = 0; i < 100 && !run.state.settled; i++) await sleep(2);
    expect(run.state.value?.value).toEqual({ payload: { path: file, size: 8, mtime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) } });
    expect(clock.requested.every((ms) => ms === 250)).toBe(true);
    expect(await run.iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('fires at once when the file is already there', async () => {
    const file = path.join(dir, 'present');
    writeFileSync(file, 'x');
    const clock = new FakeClock(T0);
    const { value } = await start(new FileTrigger(file, 1000), context(clock)).first;
    expect(value).toMatchObject({ payload: { path: file, size: 1 } });
    expect(clock.requested).toEqual([]);
  });

  it('fires on the real clock when another process writes the file', async () => {
    const file = path.join(dir, 'later.txt');
    const run = start(new FileTrigger(file, 10), context(systemClock));
    await sleep(40);
    expect(run.state.settled).toBe(false);
    writeFileSync(file, 'hello');
    const { value } = await run.first;
    expect(value).toMatchObject({ payload: { path: file, size: 5 } });
  });

  it('is cancelled through its AbortSignal while polling', async () => {
    const controller = new AbortController();
    const run = start(new FileTrigger(path.join(dir, 'never'), 10), context(systemClock, controller.signal));
    await sleep(30);
    controller.abort();
    await expect(run.first).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('serialises its path and poll interval', () => {
    expect(new FileTrigger('/data/in.csv', 500).serialize()).toEqual({ type: FILE_TRIGGER, kwargs: { path: '/data/in.csv', pollIntervalMs: 500 } });
  });
});

describe('TriggerRegistry', () => {
  const registry = builtinTriggerRegistry();

  function thrown(fn: () => unknown): unknown {
    try {
      fn();
    } catch (err) {
      return err;
    }
    throw new Error('expected a throw');
  }

  it('knows the built-in types', () => {
    expect(registry.names().sort()).toEqual([DATETIME_TRIGGER, FILE_TRIGGER]);
    expect(registry.has('datetime')).toBe(true);
    expect(registry.has('DateTimeTrigger')).toBe(false);
  });

  it('rejects unknown types with UnknownTriggerTypeError, on create and on validate', () => {
    for (const fn of [() => registry.create({ type: 'airflow.triggers.Http', kwargs: {} }), () => registry.validate({ type: 'nope', kwargs: {} })]) {
      const err = thrown(fn);
      expect(err).toBeInstanceOf(UnknownTriggerTypeError);
      expect((err as UnknownTriggerTypeError).code).toBe('UNKNOWN_TRIGGER_TYPE');
      expect((err as UnknownTriggerTypeError).retryable).toBe(false);
    }
    expect((thrown(() => registry.validate({ type: 'nope', kwargs: {} })) as UnknownTriggerTypeError).triggerType).toBe('nope');
  });

  it.each([
    ['datetime', { moment: 'tomorrow' }, 'moment'],
    ['datetime', { moment: '2026-11-25 12:00' }, 'moment'],
    ['datetime', {}, 'moment'],
    ['datetime', { moment: '2026-11-25T12:00:00Z', payload: 'not an object' }, 'payload'],
    ['file', { path: '' }, 'path'],
    ['file', { path: '/x', pollIntervalMs: 5 }, 'pollIntervalMs'],
    ['file', { path: '/x', pollIntervalMs: 1.5 }, 'pollIntervalMs'],
  ])('rejects %s kwargs %j with InvalidInputError at %s', (type, kwargs, where) => {
    for (const fn of [() => registry.create({ type, kwargs: kwargs }), () => registry.validate({ type, kwargs: kwargs })]) {
      const err = thrown(fn);
      expect(err).toBeInstanceOf(InvalidInputError);
      const e = err as InvalidInputError;
      expect(e.code).toBe('INVALID_INPUT');
      expect(e.where).toBe(`kwargs of trigger type "${type}"`);
      expect(e.issues.map((i) => i.path)).toContain(where);
    }
  });

  it('creates triggers that serialise back to what they were created from', () => {
    const samples = [
      new DateTimeTrigger(new Date(T0)).serialize(),
      new DateTimeTrigger(new Date(T0), { a: [1, 2], b: { c: null } }).serialize(),
      new FileTrigger('/tmp/x', 20).serialize(),
    ];
    for (const s of samples) {
      const t = registry.create(s);
      expect(t.serialize()).toEqual(s);
      expect(() => registry.validate(s)).not.toThrow();
    }
    expect(registry.create({ type: 'file', kwargs: { path: '/tmp/y' } }).serialize().kwargs).toEqual({ path: '/tmp/y', pollIntervalMs: 1000 });
    expect(registry.create({ type: 'datetime', kwargs: { moment: '2026-11-25T13:00:00+01:00' } })).toBeInstanceOf(DateTimeTrigger);
  });

  it('refuses to register a type twice', () => {
    const r = new TriggerRegistry([dateTimeTriggerType]);
    expect(() => r.register(dateTimeTriggerType)).toThrow(/registered twice/);
    expect(r.register(fileTriggerType).names()).toEqual(['datetime', 'file']);
  });
});
