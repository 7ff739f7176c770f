import type { BaselineFigures } from './bullmq-baseline';
import type { DeferrableFigures } from './deferrable-pipeline';

export interface LifecycleOptions {
  tasks: number;
  runs: number;
  slots: number;
  eventConcurrency: number;
  dispatchBatch: number;
  /** `--schedulers` / `--triggerers`: processes of each (one worker process in every case). */
  replicas: { scheduler: number; triggerer: number };
  timeoutMs: number;
  /** `--rate`: tasks enqueued per second (open loop), or null for all at once. */
  rate: number | null;
  /** `--census` / `--cpu-prof`: instrument the processes (slower) and keep what they wrote here. */
  instrument: { root: string; census: boolean; cpuProf: boolean } | null;
  /** `--retention`: run with retention on (a short retention age) and report the table sizes. */
  retention: boolean;
}

export interface RunFigures {
  deferrable: DeferrableFigures;
  baseline: BaselineFigures;
  /** Deferrable cycles/s divided by BullMQ-only cycles/s, both measured in this run. */
  ratio: number;
  /** Census and profile summaries of an instrumented run. */
  instrumentNotes: string[];
}

/** The targets on these 2-core machines; a miss is reported, never lowered. */
export const TARGETS = { cyclesPerS: 1000, resumeP99Ms: 50 } as const;
