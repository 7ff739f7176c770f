import { defineTask } from '@deferrable/domain';
import { TimeDeltaTrigger } from '@deferrable/triggers';
import { z } from 'zod';

/**
 * The task the lifecycle benchmark runs, loaded by the worker through DEFERRABLE_MODULES.
 * Like `test.defer-once`, but the timer's event carries the task instance id: the scheduler's
 * resume clears task_instance.trigger_id, and this is what lets the benchmark join a task to the
 * trigger (and its fired_at) that resumed it.
 */
export const BENCH_TASK = 'bench.cycle';

export const benchCycle = defineTask({
  name: BENCH_TASK,
  args: z.object({ delayMs: z.number().int().min(0) }),
  execute(ctx) {
    ctx.defer({
      trigger: new TimeDeltaTrigger(ctx.args.delayMs, ctx.now(), { taskInstanceId: ctx.taskInstanceId }),
      method: 'resume',
    });
  },
  callbacks: {
    resume() {
      return null;
    },
  },
});

export const tasks = [benchCycle];
