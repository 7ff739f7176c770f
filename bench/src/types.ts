import type { BaselineFigures } from './bullmq-baseline';
import type { DeferrableFigures } from './deferrable-pipeline';

export interface LifecycleOptions {
  tasks: number;
  runs: number;
  slots: number;
  eventConcurrency: number;
  dispatchBatch: number;
  timeoutMs: number;
}

export interface RunFigures {
  deferrable: DeferrableFigures;
  baseline: BaselineFigures;
  /** Deferrable cycles/s divided by BullMQ-only cycles/s, both measured in this run. */
  ratio: number;
}

/** The targets on these 2-core machines; a miss is reported, never lowered. */
export const TARGETS = { cyclesPerS: 1000, resumeP99Ms: 50 } as const;
