import { defineTask, defineTriggerType, UnrecoverableTaskError, type Trigger } from '@deferrable/domain';
import { DateTimeTrigger, TimeDeltaTrigger } from '@deferrable/triggers';
import { z } from 'zod';

/**
 * Task and trigger types for end-to-end tests, loaded by the apps through DEFERRABLE_MODULES
 * (`@deferrable/testkit/dist/fixtures`). They record nothing outside the task instance: the tests
 * read the state of record.
 */

const DeferArgs = z.object({ delayMs: z.number().int().min(0), tag: z.string().optional() });

/** Defers on a timer, resumes with the event. */
export const deferOnce = defineTask({
  name: 'test.defer-once',
  args: DeferArgs,
  execute(ctx) {
    ctx.defer({ trigger: new TimeDeltaTrigger(ctx.args.delayMs, ctx.now()), method: 'resume', kwargs: { tag: ctx.args.tag ?? null } });
  },
  callbacks: {
    resume(ctx, event, kwargs) {
      return { event, kwargs, tryNumber: ctx.tryNumber };
    },
  },
});

/** Defers on a moment far away with a short timeout: the deferral times out. */
export const deferTimesOut = defineTask({
  name: 'test.defer-times-out',
  args: z.object({ timeoutMs: z.number().int().min(1) }),
  execute(ctx) {
    ctx.defer({ trigger: new DateTimeTrigger(new Date(ctx.now() + 3_600_000)), method: 'never', timeoutMs: ctx.args.timeoutMs });
  },
  callbacks: {
    never() {
      return 'fired';
    },
  },
});

/** Its callback throws on the first try and succeeds on a later one. */
export const flakyCallback = defineTask({
  name: 'test.flaky-callback',
  args: DeferArgs,
  execute(ctx) {
    ctx.defer({ trigger: new TimeDeltaTrigger(ctx.args.delayMs, ctx.now()), method: 'resume' });
  },
  callbacks: {
    resume(ctx) {
      if (ctx.tryNumber < 2) throw new Error(`callback fails on try ${ctx.tryNumber}`);
      return { tryNumber: ctx.tryNumber };
    },
  },
});

/** Its callback holds the slot for `holdMs` (so a test can kill the worker during it). */
export const slowCallback = defineTask({
  name: 'test.slow-callback',
  args: z.object({ delayMs: z.number().int().min(0), holdMs: z.number().int().min(0) }),
  execute(ctx) {
    ctx.defer({ trigger: new TimeDeltaTrigger(ctx.args.delayMs, ctx.now()), method: 'resume' });
  },
  callbacks: {
    async resume(ctx) {
      // Only the first try holds: a retry after the worker was killed finishes at once.
      if (ctx.tryNumber === 1) await new Promise((r) => setTimeout(r, ctx.args.holdMs));
      return { tryNumber: ctx.tryNumber };
    },
  },
});

/** Defers on a trigger type nobody registered. */
export const unknownTrigger = defineTask({
  name: 'test.unknown-trigger',
  execute(ctx) {
    const trigger: Trigger = {
      serialize: () => ({ type: 'no-such-trigger', kwargs: {} }),
      async *run() {},
    };
    ctx.defer({ trigger, method: 'resume' });
  },
  // A real callback: the trigger type is the only thing wrong with this deferral.
  callbacks: {
    resume() {
      return 'never reached';
    },
  },
});

/** Blocks its slot without deferring, for comparison. */
export const blockingWait = defineTask({
  name: 'test.blocking-wait',
  args: z.object({ ms: z.number().int().min(0) }),
  async execute(ctx) {
    await new Promise((r) => setTimeout(r, ctx.args.ms));
    return { waited: ctx.args.ms };
  },
});

export const failsHard = defineTask({
  name: 'test.fails-hard',
  execute() {
    throw new UnrecoverableTaskError('this task never succeeds');
  },
});

/** A trigger that throws after a delay, to exercise the failure path. */
export const explodingTriggerType = defineTriggerType({
  type: 'test.exploding',
  kwargs: z.object({ afterMs: z.number().int().min(0) }),
  create: (kwargs) => ({
    serialize: () => ({ type: 'test.exploding', kwargs }),
    // oxlint-disable-next-line require-yield -- a trigger that throws before any event
    async *run(ctx) {
      await ctx.clock.sleep(kwargs.afterMs, ctx.signal);
      throw new Error('the trigger exploded');
    },
  }),
});

/** Sleeps, then busy-waits `blockMs` on the event loop (what a trigger must never do), then fires. */
export const blockingTriggerType = defineTriggerType({
  type: 'test.blocking',
  kwargs: z.object({ afterMs: z.number().int().min(0), blockMs: z.number().int().min(0) }),
  create: (kwargs) => ({
    serialize: () => ({ type: 'test.blocking', kwargs }),
    async *run(ctx) {
      await ctx.clock.sleep(kwargs.afterMs, ctx.signal);
      const until = Date.now() + kwargs.blockMs;
      while (Date.now() < until) {
        // spin
      }
      yield { payload: { blockedMs: kwargs.blockMs } };
    },
  }),
});

/** Defers on the blocking trigger. */
export const deferOnBlocking = defineTask({
  name: 'test.defer-on-blocking',
  args: z.object({ afterMs: z.number().int().min(0), blockMs: z.number().int().min(0) }),
  execute(ctx) {
    ctx.defer({ trigger: blockingTriggerType.create({ afterMs: ctx.args.afterMs, blockMs: ctx.args.blockMs }), method: 'resume' });
  },
  callbacks: {
    resume(_ctx, event) {
      return { event };
    },
  },
});

/** A timer-like trigger whose due time cannot be computed: it throws as the triggerer starts it. */
export const badDueTriggerType = defineTriggerType({
  type: 'test.bad-due',
  kwargs: z.object({}),
  create: () => ({
    serialize: () => ({ type: 'test.bad-due', kwargs: {} }),
    dueAt(): number {
      throw new Error('no due time');
    },
    eventAt: () => ({ payload: null }),
    // oxlint-disable-next-line require-yield -- a trigger that throws before any event
    async *run() {
      throw new Error('no due time');
    },
  }),
});

/** Waits `ms` without listening to its cancellation signal (what a trigger should not do). */
export const deafTriggerType = defineTriggerType({
  type: 'test.deaf',
  kwargs: z.object({ ms: z.number().int().min(0) }),
  create: (kwargs) => ({
    serialize: () => ({ type: 'test.deaf', kwargs }),
    async *run() {
      await new Promise((r) => setTimeout(r, kwargs.ms));
      yield { payload: { waited: kwargs.ms } };
    },
  }),
});

/** Defers on the trigger that ignores cancellation. */
export const deferOnDeaf = defineTask({
  name: 'test.defer-on-deaf',
  args: z.object({ ms: z.number().int().min(0) }),
  execute(ctx) {
    ctx.defer({ trigger: deafTriggerType.create({ ms: ctx.args.ms }), method: 'resume' });
  },
  callbacks: {
    resume(_ctx, event) {
      return { event };
    },
  },
});

/** Defers on the trigger that throws as it starts. */
export const deferOnBadDue = defineTask({
  name: 'test.defer-on-bad-due',
  execute(ctx) {
    ctx.defer({ trigger: badDueTriggerType.create({}), method: 'resume' });
  },
  callbacks: {
    resume() {
      return 'resumed';
    },
  },
});

/** Defers on a timer on a named trigger queue. */
export const deferOnQueue = defineTask({
  name: 'test.defer-on-queue',
  args: z.object({ delayMs: z.number().int().min(0), triggerQueue: z.string() }),
  execute(ctx) {
    const timer = new TimeDeltaTrigger(ctx.args.delayMs, ctx.now());
    const trigger: Trigger = { serialize: () => ({ ...timer.serialize(), queue: ctx.args.triggerQueue }), run: (c) => timer.run(c) };
    ctx.defer({ trigger, method: 'resume' });
  },
  callbacks: {
    resume(_ctx, event) {
      return { event };
    },
  },
});

export const tasks = [
  deferOnBadDue,
  deferOnDeaf,
  deferOnBlocking,
  deferOnQueue,
  deferOnce,
  deferTimesOut,
  flakyCallback,
  slowCallback,
  unknownTrigger,
  blockingWait,
  failsHard,
];
export const triggers = [explodingTriggerType, blockingTriggerType, badDueTriggerType, deafTriggerType];
