import { bullPrefix, consumerConnection } from '@deferrable/queues';
import { DelayedError, Worker, type Job } from 'bullmq';
import { z } from 'zod';

/**
 * The BullMQ-only baseline's worker, a separate OS process like Deferrable's worker. Each job runs
 * twice: the first run moves itself to delayed (BullMQ's "process step jobs" pattern), the second
 * run completes, returning when it started and when it was due. No PostgreSQL anywhere.
 */
const Env = z.object({
  BENCH_REDIS_URL: z.string().url(),
  BENCH_PREFIX: z.string().min(1),
  BENCH_QUEUE: z.string().min(1),
  BENCH_CONCURRENCY: z.coerce.number().int().min(1),
});

export const BaselineJobData = z.object({
  delayMs: z.number().int().min(0),
  dueAt: z.number().optional(),
});
export type BaselineJobData = z.infer<typeof BaselineJobData>;

export const BaselineResult = z.object({ dueAt: z.number(), resumedAt: z.number() });
export type BaselineResult = z.infer<typeof BaselineResult>;

async function processJob(job: Job, token?: string): Promise<BaselineResult> {
  const data = BaselineJobData.parse(job.data);
  if (data.dueAt === undefined) {
    const dueAt = Date.now() + data.delayMs;
    // Record the step before leaving the active state, so the second run sees it.
    await job.updateData({ ...data, dueAt });
    await job.moveToDelayed(dueAt, token);
    throw new DelayedError();
  }
  return { dueAt: data.dueAt, resumedAt: Date.now() };
}

function main(): void {
  const env = Env.parse(process.env);
  const worker = new Worker(env.BENCH_QUEUE, processJob, {
    connection: consumerConnection(env.BENCH_REDIS_URL),
    prefix: bullPrefix(env.BENCH_PREFIX),
    concurrency: env.BENCH_CONCURRENCY,
  });
  worker.on('error', (err) => process.stderr.write(`baseline worker error: ${String(err)}\n`));
  worker.on('ready', () => process.stdout.write('ready\n'));
  const stop = () => void worker.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();
