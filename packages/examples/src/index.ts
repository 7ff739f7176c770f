import { access } from 'node:fs/promises';
import { defineTask } from '@deferrable/domain';
import { FileTrigger } from '@deferrable/triggers';
import { z } from 'zod';
import { waitAndReport } from './wait-and-report';

export { waitAndReport };

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
