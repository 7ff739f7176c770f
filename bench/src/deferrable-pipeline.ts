import path from 'node:path';
import { AppProcess, createTestEnv, waitFor, type AppName, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import { cpuSnapshot, cpuUsage, type CpuSnapshot } from './cpu';
import { BENCH_TASK } from './fixture';
import * as SQL from './sql';
import { distribution, spreadDelays, type Distribution } from './stats';
import { onTeardown } from './teardown';

export interface PipelineOptions {
  tasks: number;
  slots: number;
  eventConcurrency: number;
  dispatchBatch: number;
  timeoutMs: number;
  redisPid: number | null;
}

export interface DeferrableFigures {
  cyclesPerS: number;
  elapsedMs: number;
  /** trigger.fired_at (event recorded) -> second queued->running (callback starts). */
  resume: Distribution;
  /** The timer's due moment -> callback starts (comparable with the baseline's). */
  dueToResume: Distribution;
  /** The resume path, stage by stage. */
  stages: Record<'timer late' | 'fire -> recorded' | 'recorded -> applied' | 'applied -> queued' | 'queued -> running', Distribution>;
  sqlTransactionsPerCycle: number;
  tupleWritesPerCycle: Record<string, number>;
  bullmqJobsPerCycle: number;
  redisCommandsPerCycle: number;
  cpu: Record<string, number>;
  /** Tasks that ran more or less than twice, or lack a resume record. */
  anomalies: number;
}

const ENQUEUE_CHUNK = 1000;

/** Environment of the three apps: the bench fixture, warn logs, production intervals. */
function appEnv(env: TestEnv, o: PipelineOptions): Record<string, string> {
  return env.appEnv({
    LOG_LEVEL: 'warn',
    DEFERRABLE_MODULES: path.join(__dirname, 'fixture.js'),
    DEFERRABLE_WORKER_SLOTS: String(o.slots),
    DEFERRABLE_EVENT_CONCURRENCY: String(o.eventConcurrency),
    DEFERRABLE_DISPATCH_BATCH: String(o.dispatchBatch),
    // Triggers must outlive their resume: fired_at is read after the run.
    DEFERRABLE_CLEANUP_INTERVAL_MS: '3600000',
    // The configuration defaults, not testkit's FAST_ENV: fast test intervals add polling load.
    DEFERRABLE_POLL_MS: '1000',
    DEFERRABLE_HEARTBEAT_MS: '2000',
    DEFERRABLE_REAP_AFTER_MS: '30000',
    DEFERRABLE_REDISPATCH_AFTER_MS: '10000',
    DEFERRABLE_CLAIM_INTERVAL_MS: '1000',
    DEFERRABLE_SYNC_INTERVAL_MS: '2000',
    DEFERRABLE_HEALTH_THRESHOLD_MS: '10000',
    DEFERRABLE_SHUTDOWN_GRACE_MS: '2000',
  });
}

/** Starts the apps into `apps` (so that teardown sees each one as soon as it exists). */
async function startApps(env: TestEnv, o: PipelineOptions, db: Client, apps: Map<AppName, AppProcess>): Promise<void> {
  const vars = appEnv(env, o);
  for (const name of ['scheduler', 'triggerer', 'worker'] as const) apps.set(name, new AppProcess(name, vars));
  // At LOG_LEVEL=warn the apps print no "started" line: each registers its job row instead.
  await waitFor(
    async () => {
      for (const a of apps.values()) if (!a.running) throw new Error(`${a.name} exited at startup: ${a.stderr.join('\n').slice(0, 2000)}`);
      const types = new Set((await db.query<{ job_type: string }>(SQL.RUNNING_JOBS)).rows.map((r) => r.job_type));
      return types.size === 3;
    },
    20_000,
    'scheduler, triggerer and worker to register',
    50,
  );
  // Let the BullMQ consumers and LISTEN connections finish connecting.
  await new Promise((r) => setTimeout(r, 500));
}

async function redisCommands(env: TestEnv): Promise<number> {
  const m = /total_commands_processed:(\d+)/.exec(await env.redis.info('stats'));
  return Number(m?.[1] ?? 0);
}

async function readCounters(url: string): Promise<SQL.DbCounters> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return SQL.DbCounters.parse((await c.query(SQL.DB_COUNTERS)).rows[0]);
  } finally {
    await c.end();
  }
}

/** Enqueues the tasks in chunks and waits until all succeeded; returns when it started. */
async function drive(db: Client, o: PipelineOptions): Promise<{ startedAt: number; statements: number }> {
  const delays = spreadDelays(o.tasks);
  let statements = 0;
  const startedAt = Date.now();
  for (let i = 0; i < delays.length; i += ENQUEUE_CHUNK) {
    await db.query(SQL.ENQUEUE, [BENCH_TASK, delays.slice(i, i + ENQUEUE_CHUNK)]);
    statements++;
  }
  await waitFor(
    async () => {
      statements++;
      const { done, bad } = (await db.query<{ done: number; bad: number }>(SQL.PROGRESS)).rows[0]!;
      if (bad > 0) throw new Error(`${bad} tasks failed or were cancelled`);
      return done >= o.tasks;
    },
    o.timeoutMs,
    `${o.tasks} tasks to succeed`,
    100,
  );
  return { startedAt, statements };
}

function summarise(rows: SQL.ResumePathRow[], startedAt: number, tasks: number) {
  const ok = rows.filter((r) => r.runs === 2 && r.recorded !== null && r.run2 !== null && r.succeeded !== null);
  const d = (f: (r: SQL.ResumePathRow) => number) => distribution(ok.map(f));
  const finished = Math.max(...ok.map((r) => r.succeeded!));
  return {
    elapsedMs: finished - startedAt,
    cyclesPerS: (tasks * 1000) / (finished - startedAt),
    resume: d((r) => r.run2! - r.recorded!),
    dueToResume: d((r) => r.run2! - r.due!),
    stages: {
      'timer late': d((r) => r.fired! - r.due!),
      'fire -> recorded': d((r) => r.recorded! - r.fired!),
      'recorded -> applied': d((r) => r.applied! - r.recorded!),
      'applied -> queued': d((r) => r.queued2! - r.applied!),
      'queued -> running': d((r) => r.run2! - r.queued2!),
    },
    anomalies: tasks - ok.length,
  };
}

function perCycle(before: SQL.DbCounters, after: SQL.DbCounters, tasks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [table, a] of Object.entries(after.tables)) {
    const b = before.tables[table] ?? { ins: 0, upd: 0, del: 0, hot: 0 };
    const writes = { ins: a.ins - b.ins, upd: a.upd - b.upd, del: a.del - b.del };
    for (const [k, v] of Object.entries(writes)) if (v > 0) out[`${table}.${k}`] = v / tasks;
  }
  return out;
}

/** One measured run: fresh database and prefix, three app processes, N lifecycles. */
export async function runDeferrable(o: PipelineOptions): Promise<DeferrableFigures> {
  const env = await createTestEnv('bench');
  const undoEnv = onTeardown('benchmark database', () => env.cleanup());
  const db = new Client({ connectionString: env.databaseUrl, application_name: 'deferrable-bench' });
  await db.connect();
  const apps = new Map<AppName, AppProcess>();
  const undoApps = onTeardown('app processes', async () => {
    await Promise.all([...apps.values()].map((a) => a.stop()));
    await db.end().catch(() => undefined);
  });
  try {
    await startApps(env, o, db, apps);
    const countersBefore = await readCounters(env.databaseUrl);
    const redisBefore = await redisCommands(env);
    const cpuBefore: CpuSnapshot = cpuSnapshot();
    const { startedAt, statements } = await drive(db, o);
    const cpuAfter = cpuSnapshot();
    const redisAfter = await redisCommands(env);
    const backends = new Set((await db.query<{ pid: number }>(SQL.BACKEND_PIDS)).rows.map((r) => r.pid));
    const pidOf = (n: AppName) => apps.get(n)!.pid;
    const cpu = cpuUsage(cpuBefore, cpuAfter, [
      { label: 'scheduler', pids: (pid) => pid === pidOf('scheduler') },
      { label: 'triggerer', pids: (pid) => pid === pidOf('triggerer') },
      { label: 'worker', pids: (pid) => pid === pidOf('worker') },
      { label: 'bench', pids: (pid) => pid === process.pid },
      { label: 'postgres (this db)', pids: (pid) => backends.has(pid) },
      { label: 'postgres (rest)', pids: (_pid, comm) => comm === 'postgres' },
      { label: 'redis', pids: (pid) => pid === o.redisPid },
    ]);
    // Stop the apps (their backends flush their statistics as they exit), then count.
    await undoApps();
    await new Promise((r) => setTimeout(r, 300));
    const countersAfter = await readCounters(env.databaseUrl);
    const rows = SQL.ResumePathRow.array().parse((await env.db.pool.query(SQL.RESUME_PATH)).rows);
    const jobs = SQL.JobsPublished.parse((await env.db.pool.query(SQL.JOBS_PUBLISHED)).rows[0]);
    return {
      ...summarise(rows, startedAt, o.tasks),
      // Minus the benchmark's own enqueues and progress polls, and the first counter read.
      sqlTransactionsPerCycle: (countersAfter.xacts - countersBefore.xacts - statements - 1) / o.tasks,
      tupleWritesPerCycle: perCycle(countersBefore, countersAfter, o.tasks),
      bullmqJobsPerCycle: (jobs.dispatch_jobs + jobs.event_jobs) / o.tasks,
      redisCommandsPerCycle: (redisAfter - redisBefore) / o.tasks,
      cpu,
    };
  } finally {
    await undoApps();
    await undoEnv();
  }
}
