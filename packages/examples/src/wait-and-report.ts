// The README's task example, as written there (a test keeps the two the same).
// biome-ignore-all format: the README's layout (comments aligned in a column) is kept as written
import { defineTask } from '@deferrable/domain';
import { TimeDeltaTrigger } from '@deferrable/triggers';
import { z } from 'zod';

export const waitAndReport = defineTask({
  name: 'examples.wait-and-report',
  args: z.object({ seconds: z.number().min(0).max(86_400) }), // checked at enqueue and before each run
  retry: { maxTries: 3, delayMs: 1000, backoff: 2 },            // defaults for every enqueue
  executionTimeoutMs: 60_000,
  execute(ctx) {
    ctx.defer({                                       // never returns; the slot is freed
      trigger: new TimeDeltaTrigger(ctx.args.seconds * 1000, ctx.now()),
      method: 'report',                               // the callback to resume in
      kwargs: { startedAt: ctx.now() },
      timeoutMs: 3_600_000,                           // then the task resumes with TriggerTimeoutError
    });
  },
  callbacks: {
    report(ctx, event, kwargs) {                      // may run on another worker
      return { event, kwargs };                       // stored as the result (JSON)
    },
  },
});
