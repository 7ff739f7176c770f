import path from 'node:path';
import { REDIS_URL } from '@deferrable/testkit';
import { Redis } from 'ioredis';
import { runBaseline } from './bullmq-baseline';
import { runDeferrable } from './deferrable-pipeline';
import { censusReport, profileReport, type Instrumentation } from './instrument-report';
import { machineFacts, type MachineFacts } from './machine';
import { printReport } from './report';
import type { LifecycleOptions, RunFigures } from './types';

/**
 * `lifecycle`: N tasks enqueue -> execute -> defer on a timer due within a second -> resume ->
 * succeed, with scheduler, triggerer and worker as separate processes; then the same N cycles
 * through BullMQ alone, in the same run. Repeated `runs` times; the report gives medians.
 */
export async function lifecycle(o: LifecycleOptions): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  let machine: MachineFacts;
  try {
    machine = await machineFacts(redis);
  } finally {
    redis.disconnect();
  }
  const runs: RunFigures[] = [];
  for (let i = 0; i < o.runs; i++) {
    const instrument = (pipeline: string): Instrumentation | null =>
      o.instrument && { ...o.instrument, dir: path.join(o.instrument.root, `run-${i + 1}`, pipeline) };
    process.stderr.write(`run ${i + 1}/${o.runs}: deferrable pipeline, ${o.tasks} tasks...\n`);
    const deferrable = await runDeferrable({ ...o, redisPid: machine.redisPid, instrument: instrument('deferrable') });
    process.stderr.write(`run ${i + 1}/${o.runs}: BullMQ-only baseline...\n`);
    const baseline = await runBaseline({
      tasks: o.tasks,
      concurrency: o.slots,
      timeoutMs: o.timeoutMs,
      rate: o.rate,
      redisPid: machine.redisPid,
      instrument: instrument('bullmq-only'),
    });
    const notes = [instrument('deferrable'), instrument('bullmq-only')].flatMap((x) => (x ? instrumentNotes(x, o.tasks) : []));
    runs.push({ deferrable, baseline, ratio: deferrable.cyclesPerS / baseline.cyclesPerS, instrumentNotes: notes });
    process.stderr.write(
      `run ${i + 1}/${o.runs}: ${deferrable.cyclesPerS.toFixed(0)} cycles/s (BullMQ-only ${baseline.cyclesPerS.toFixed(0)}), resume p99 ${deferrable.resume.p99.toFixed(1)} ms\n`,
    );
  }
  printReport(o, machine, runs);
}

function instrumentNotes(i: Instrumentation, tasks: number): string[] {
  const notes = [`${i.dir}:`];
  if (i.census) notes.push(censusReport(i.dir, tasks));
  if (i.cpuProf) notes.push(profileReport(i.dir));
  return notes;
}
