import { stat } from 'node:fs/promises';
import { defineTriggerType, triggerSleep, type Trigger, type TriggerEvent, type TriggerRunContext } from '@deferrable/domain';
import { z } from 'zod';

export const FILE_TRIGGER = 'file';

const FileKwargs = z.object({
  path: z.string().min(1).max(4096),
  pollIntervalMs: z.number().int().min(10).max(3_600_000).default(1000),
});

/**
 * Fires when a file exists (Airflow's FileTrigger): a sensor that waits in the triggerer with one
 * non-blocking stat per poll instead of holding a worker slot.
 */
export class FileTrigger implements Trigger {
  constructor(
    readonly path: string,
    readonly pollIntervalMs = 1000,
  ) {}

  serialize() {
    return { type: FILE_TRIGGER, kwargs: { path: this.path, pollIntervalMs: this.pollIntervalMs } };
  }

  async *run(ctx: TriggerRunContext): AsyncIterable<TriggerEvent> {
    for (;;) {
      const found = await stat(this.path).then(
        (s) => ({ size: s.size, mtime: s.mtime.toISOString() }),
        () => null,
      );
      if (found) {
        yield { payload: { path: this.path, ...found } };
        return;
      }
      await triggerSleep(ctx, this.pollIntervalMs);
    }
  }
}

export const fileTriggerType = defineTriggerType({
  type: FILE_TRIGGER,
  kwargs: FileKwargs,
  create: (kwargs) => new FileTrigger(kwargs.path, kwargs.pollIntervalMs),
});
