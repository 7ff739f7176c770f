import { access } from 'node:fs/promises';
import { defineTask } from '@deferrable/domain';
import { FileTrigger, TimeDeltaTrigger } from '@deferrable/triggers';
import { z } from 'zod';

/**
 * Waits on a timer without holding a worker slot, then reports. Airflow's equivalent is a
 * TimeDeltaSensorAsync: `execute` defers; `report` runs later, maybe on another worker.
 */
export const waitAndReport = defineTask({
  name: 'examples.wait-and-report',
  args: z.object({ seconds: z.number().min(0).max(86_400), label: z.string().max(200).default('report') }),
  execute(ctx) {
    ctx.defer({
      trigger: new TimeDeltaTrigger(ctx.args.seconds * 1000, ctx.now()),
      method: 'report',
      kwargs: { deferredAt: new Date(ctx.now()).toISOString() },
    });
  },
  callbacks: {
    report(ctx, event, kwargs) {
      const deferredAt = Date.parse(String(kwargs.deferredAt));
      return { label: ctx.args.label, waitedMs: ctx.now() - deferredAt, event };
    },
  },
});

/**
 * A sensor: checks a condition once; when it does not hold yet, defers to a trigger that polls it
 * in the triggerer, instead of sleeping in a worker slot. Times out after `timeoutSeconds`.
 */
export const waitForFile = defineTask({
  name: 'examples.wait-for-file',
  args: z.object({ path: z.string().min(1), pollMs: z.number().int().min(10).default(500), timeoutSeconds: z.number().min(1).default(60) }),
  retry: { maxTries: 1 },
  async execute(ctx) {
    const present = await access(ctx.args.path).then(
      () => true,
      () => false,
    );
    if (present) return { path: ctx.args.path, waited: false };
    ctx.defer({
      trigger: new FileTrigger(ctx.args.path, ctx.args.pollMs),
      method: 'found',
      timeoutMs: ctx.args.timeoutSeconds * 1000,
    });
  },
  callbacks: {
    found(ctx, event) {
      return { path: ctx.args.path, waited: true, event };
    },
  },
});

export const tasks = [waitAndReport, waitForFile];
export const triggers = [];
