import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { deleteKeys, REDIS_URL, waitFor } from '@deferrable/testkit';
import { bullPrefix, producerConnection } from '@deferrable/queues';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BaselineResult, type BaselineJobData } from './baseline-worker';
import { cpuMsPer, cpuSnapshot, cpuUsage, type CpuUsage } from './cpu';
import { instrumentEnv, type Instrumentation } from './instrument-report';
import { redisCommands } from './machine';
import { arrivals, distribution, sleepUntil, spreadDelays, type Distribution } from './stats';
import { onTeardown } from './teardown';

export interface BaselineFigures {
  cyclesPerS: number;
  elapsedMs: number;
  /** Timer due -> second run starts. */
  dueToResume: Distribution;
  /** Server-wide INFO total_commands_processed (includes commands inside Lua scripts and other users). */
  redisCommandsPerCycle: number;
  cpu: CpuUsage;
  /** CPU time of the BullMQ worker, the producer and Redis per cycle. */
  cpuMsPerCycle: number;
}

const QUEUE = 'bench-baseline';

/** The same N enqueue -> run -> delay -> run -> complete cycles through BullMQ alone. */
export async function runBaseline(opts: {
  tasks: number;
  concurrency: number;
  timeoutMs: number;
  rate: number | null;
  redisPid: number | null;
  instrument: Instrumentation | null;
}): Promise<BaselineFigures> {
  const prefix = `{bench-baseline-${process.pid}-${randomBytes(4).toString('hex')}}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUE, { connection: producerConnection(REDIS_URL), prefix: bullPrefix(prefix) });
  const undoKeys = onTeardown('baseline redis keys', async () => {
    await queue.close();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });
  const child = spawn(process.execPath, [path.join(__dirname, 'baseline-worker.js')], {
    env: {
      ...process.env,
      ...instrumentEnv(opts.instrument),
      BENCH_REDIS_URL: REDIS_URL,
      BENCH_PREFIX: prefix,
      BENCH_QUEUE: QUEUE,
      BENCH_CONCURRENCY: String(opts.concurrency),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const undoChild = onTeardown('baseline worker', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`baseline worker exited with ${code} before it was ready`)));
    });

    const before = cpuSnapshot();
    const redisBefore = await redisCommands(redis);
    const startedAt = Date.now();
    for (const chunk of arrivals(spreadDelays(opts.tasks), opts.rate)) {
      await sleepUntil(startedAt + chunk.atMs);
      await queue.addBulk(chunk.delays.map((delayMs) => ({ name: 'cycle', data: { delayMs } satisfies BaselineJobData, opts: { removeOnComplete: false } })));
    }
    await waitFor(
      async () => {
        const c = await queue.getJobCounts('completed', 'failed');
        if ((c.failed ?? 0) > 0) throw new Error(`${c.failed} baseline jobs failed`);
        return (c.completed ?? 0) >= opts.tasks;
      },
      opts.timeoutMs,
      'the BullMQ baseline to complete',
      20,
    );
    const after = cpuSnapshot();
    const redisAfter = await redisCommands(redis);

    const jobs = await queue.getJobs(['completed'], 0, -1);
    const finished = Math.max(...jobs.map((j) => j.finishedOn ?? 0));
    const lags = jobs.map((j) => {
      const r = BaselineResult.parse(j.returnvalue);
      return r.resumedAt - r.dueAt;
    });
    const elapsedMs = finished - startedAt;
    const cpu = cpuUsage(before, after, [
      { label: 'bullmq worker', pids: (pid) => pid === child.pid },
      { label: 'bench (producer)', pids: (pid) => pid === process.pid },
      { label: 'redis', pids: (pid) => pid === opts.redisPid },
    ]);
    return {
      cyclesPerS: (opts.tasks * 1000) / elapsedMs,
      elapsedMs,
      dueToResume: distribution(lags),
      redisCommandsPerCycle: (redisAfter - redisBefore) / opts.tasks,
      cpu,
      cpuMsPerCycle: cpuMsPer(cpu, ['bullmq worker', 'bench (producer)', 'redis'], opts.tasks),
    };
  } finally {
    await undoChild();
    await undoKeys();
  }
}
