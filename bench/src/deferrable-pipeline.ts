import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { AppProcess, createTestEnv, waitFor, type AppName, type TestEnv } from '@deferrable/testkit';
import { Client } from 'pg';
import { cpuMsPer, cpuSnapshot, cpuUsage, type CpuUsage } from './cpu';
import { instrumentEnv, type Instrumentation } from './instrument-report';
import { redisCommands } from './machine';
import { BENCH_TASK } from './fixture';
import * as SQL from './sql';
import { arrivals, distribution, sleepUntil, spreadDelays, type Distribution } from './stats';
import { onTeardown } from './teardown';

export interface PipelineOptions {
  tasks: number;
  slots: number;
  eventConcurrency: number;
  dispatchBatch: number;
  replicas: { scheduler: number; triggerer: number };
  timeoutMs: number;
  /** Tasks enqueued per second, or null for all at once. */
  rate: number | null;
  redisPid: number | null;
  instrument: Instrumentation | null;
  /** `--retention`: the scheduler deletes finished rows RETENTION_MS after they end, during the run. */
  retention: boolean;
}

export type Stage =
  | 'execute: running -> deferred'
  | 'timer late (claim + timer)'
  | 'fire -> recorded'
  | 'recorded -> applied'
  | 'applied -> queued'
  | 'queued -> running'
  | 'callback: running -> success'
  | 'resume, while new executes still start'
  | 'resume, after the last execute started';

export interface DeferrableFigures {
  cyclesPerS: number;
  elapsedMs: number;
  /** trigger.fired_at (event recorded) -> second queued->running (callback starts). */
  resume: Distribution;
  /** The timer's due moment -> callback starts (comparable with the baseline's). */
  dueToResume: Distribution;
  /** The resume path, stage by stage. */
  stages: Record<Stage, Distribution>;
  sqlTransactionsPerCycle: number;
  sqlRollbacksPerCycle: number;
  /** Warnings and errors the apps logged during the run, by message (they should log none). */
  appProblems: Record<string, number>;
  tupleWritesPerCycle: Record<string, number>;
  bullmqJobsPerCycle: number;
  redisCommandsPerCycle: number;
  cpu: CpuUsage;
  /** CPU time of the pipeline's processes (apps, their PostgreSQL backends, Redis, the enqueuer) per cycle. */
  cpuMsPerCycle: number;
  /** Tasks that ran more or less than twice, or lack a resume record. */
  anomalies: number;
  /** With --retention: rows of the tables retention bounds, the most seen during the run and at its end. */
  tableRows: { max: SQL.TableRows; end: SQL.TableRows } | null;
}

/** `--retention`: finished rows (and rejections) are deleted this long after they end. */
export const BENCH_RETENTION_MS = 2000;

/**
 * Environment of the three apps: the bench fixture, warn logs, the configuration's production
 * intervals (testkit's FAST_ENV polls faster and adds load). Any of these variables set in the
 * benchmark's own environment overrides the value here (e.g. DEFERRABLE_CLAIM_INTERVAL_MS=50).
 */
/** The scheduler's dispatch backlog mark in the benchmark (its default). */
export const BENCH_DISPATCH_AHEAD = 1000;

// A key of the benchmark's own: the apps warn (and the report would count it) on the development key.
const BENCH_KWARGS_KEY = randomBytes(32).toString('base64');

function benchDefaults(o: Pick<PipelineOptions, 'slots' | 'eventConcurrency' | 'dispatchBatch' | 'retention'>): Record<string, string> {
  // Job rows live longer than the triggerers' health threshold: a live process's row must never go.
  const retention: Record<string, string> = o.retention
    ? {
        DEFERRABLE_RETENTION_MS: String(BENCH_RETENTION_MS),
        DEFERRABLE_REJECTION_RETENTION_MS: String(BENCH_RETENTION_MS),
        DEFERRABLE_JOB_RETENTION_MS: '60000',
        DEFERRABLE_RETENTION_INTERVAL_MS: '500',
      }
    : {};
  return {
    ...retention,
    LOG_LEVEL: 'warn',
    DEFERRABLE_KWARGS_KEYS: BENCH_KWARGS_KEY,
    DEFERRABLE_MODULES: path.join(__dirname, 'fixture.js'),
    DEFERRABLE_WORKER_SLOTS: String(o.slots),
    DEFERRABLE_EVENT_CONCURRENCY: String(o.eventConcurrency),
    DEFERRABLE_DISPATCH_BATCH: String(o.dispatchBatch),
    DEFERRABLE_DISPATCH_AHEAD: String(BENCH_DISPATCH_AHEAD),
    DEFERRABLE_CLEANUP_INTERVAL_MS: '5000',
    DEFERRABLE_POLL_MS: '1000',
    DEFERRABLE_HEARTBEAT_MS: '2000',
    DEFERRABLE_REAP_AFTER_MS: '30000',
    DEFERRABLE_REDISPATCH_AFTER_MS: '10000',
    DEFERRABLE_CLAIM_INTERVAL_MS: '1000',
    DEFERRABLE_SYNC_INTERVAL_MS: '2000',
    DEFERRABLE_HEALTH_THRESHOLD_MS: '10000',
    DEFERRABLE_SHUTDOWN_GRACE_MS: '2000',
  };
}

function appSettings(o: PipelineOptions): Record<string, string> {
  return Object.fromEntries(Object.entries(benchDefaults(o)).map(([k, v]) => [k, process.env[k] ?? v]));
}

/** Variables of the benchmark's environment that change what the apps do, for the report. */
export function environmentOverrides(): string[] {
  const keys = [...Object.keys(benchDefaults({ slots: 1, eventConcurrency: 1, dispatchBatch: 1, retention: true })), 'PGOPTIONS', 'NODE_OPTIONS'];
  return keys.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
}

/** Starts the apps into `apps` (so that teardown sees each one as soon as it exists). */
async function startApps(env: TestEnv, o: PipelineOptions, db: Client, apps: AppProcess[]): Promise<void> {
  const vars = env.appEnv({ ...appSettings(o), ...instrumentEnv(o.instrument) });
  type JobApp = Exclude<AppName, 'api'>;
  const wanted: Record<JobApp, number> = { ...o.replicas, worker: 1 };
  for (const [name, n] of Object.entries(wanted) as [JobApp, number][]) {
    for (let i = 0; i < n; i++) apps.push(new AppProcess(name, vars));
  }
  // At LOG_LEVEL=warn the apps print no "started" line: each registers its job row instead.
  await waitFor(
    async () => {
      for (const a of apps) if (!a.running) throw new Error(`${a.name} exited at startup: ${a.stderr.join('\n').slice(0, 2000)}`);
      const running = (await db.query<{ job_type: JobApp; n: number }>(SQL.RUNNING_JOBS)).rows;
      return (Object.keys(wanted) as JobApp[]).every((t) => running.find((r) => r.job_type === t)?.n === wanted[t]);
    },
    20_000,
    'the schedulers, triggerers and worker to register',
    50,
  );
  // Let the BullMQ consumers and LISTEN connections finish connecting.
  await new Promise((r) => setTimeout(r, 500));
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

/** The most rows seen in each table so far, counted at most once a second. */
class TableRowsSampler {
  max: SQL.TableRows = { task_instance: 0, task_transition: 0, job: 0, rejection: 0 };
  private lastAt = 0;

  async sample(db: Client, force = false): Promise<SQL.TableRows | null> {
    if (!force && Date.now() - this.lastAt < 1000) return null;
    this.lastAt = Date.now();
    const rows = SQL.TableRows.parse((await db.query(SQL.TABLE_ROWS)).rows[0]);
    for (const k of Object.keys(rows) as (keyof SQL.TableRows)[]) this.max[k] = Math.max(this.max[k], rows[k]);
    return rows;
  }
}

/** Enqueues the tasks in chunks and waits until all succeeded; returns when it started. */
async function drive(db: Client, o: PipelineOptions, sampler: TableRowsSampler | null): Promise<{ startedAt: number; statements: number }> {
  let statements = 0;
  const startedAt = Date.now();
  for (const chunk of arrivals(spreadDelays(o.tasks), o.rate)) {
    await sleepUntil(startedAt + chunk.atMs);
    await db.query(SQL.ENQUEUE, [BENCH_TASK, chunk.delays]);
    statements++;
    if (sampler && (await sampler.sample(db))) statements++;
  }
  await waitFor(
    async () => {
      statements++;
      const { pending, failed } = (await db.query<{ pending: boolean; failed: boolean }>(SQL.PROGRESS)).rows[0]!;
      if (failed) throw new Error('tasks failed or were cancelled');
      if (sampler && (await sampler.sample(db))) statements++;
      return !pending;
    },
    o.timeoutMs,
    `${o.tasks} tasks to succeed`,
    100,
  );
  const succeeded = (await db.query<{ n: number }>(SQL.COUNT_SUCCEEDED)).rows[0]!.n;
  if (succeeded !== o.tasks) throw new Error(`${succeeded} of ${o.tasks} tasks succeeded`);
  return { startedAt, statements: statements + 1 };
}

function summarise(rows: SQL.ResumePathRow[], startedAt: number, tasks: number) {
  const ok = rows.filter((r) => r.runs === 2 && r.recorded !== null && r.run2 !== null && r.succeeded !== null);
  const d = (f: (r: SQL.ResumePathRow) => number) => distribution(ok.map(f));
  const finished = Math.max(...ok.map((r) => r.succeeded!));
  // Splits the resumes by whether the pipeline was still starting new executes when the event was
  // recorded: it shows how much of the resume time is contention with the rest of the burst.
  const lastExecute = Math.max(...ok.map((r) => r.run1!));
  const resumeIf = (f: (r: SQL.ResumePathRow) => boolean) => distribution(ok.filter(f).map((r) => r.run2! - r.recorded!));
  return {
    elapsedMs: finished - startedAt,
    cyclesPerS: (tasks * 1000) / (finished - startedAt),
    resume: d((r) => r.run2! - r.recorded!),
    dueToResume: d((r) => r.run2! - r.due!),
    stages: {
      'execute: running -> deferred': d((r) => r.deferred! - r.run1!),
      'timer late (claim + timer)': d((r) => r.fired! - r.due!),
      'fire -> recorded': d((r) => r.recorded! - r.fired!),
      'recorded -> applied': d((r) => r.applied! - r.recorded!),
      'applied -> queued': d((r) => r.queued2! - r.applied!),
      'queued -> running': d((r) => r.run2! - r.queued2!),
      'callback: running -> success': d((r) => r.succeeded! - r.run2!),
      'resume, while new executes still start': resumeIf((r) => r.recorded! <= lastExecute),
      'resume, after the last execute started': resumeIf((r) => r.recorded! > lastExecute),
    },
    anomalies: tasks - ok.length,
  };
}

function perCycle(before: SQL.DbCounters, after: SQL.DbCounters, tasks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [table, a] of Object.entries(after.tables)) {
    const b = before.tables[table] ?? { ins: 0, upd: 0, del: 0, hot: 0 };
    // hot: updates that touched no indexed column (no index entries written).
    const writes = { ins: a.ins - b.ins, upd: a.upd - b.upd, 'upd (hot)': a.hot - b.hot, del: a.del - b.del };
    if (writes.upd <= 0) delete (writes as Partial<typeof writes>)['upd (hot)'];
    for (const [k, v] of Object.entries(writes)) if (v > 0 || k === 'upd (hot)') out[`${table}.${k}`] = v / tasks;
  }
  return out;
}

function problems(apps: readonly AppProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of apps) {
    for (const r of a.logs) if (r.level >= 40) out[`${a.name}: ${r.msg}`] = (out[`${a.name}: ${r.msg}`] ?? 0) + 1;
  }
  return out;
}

/** One measured run: fresh database and prefix, three app processes, N lifecycles. */
export async function runDeferrable(o: PipelineOptions): Promise<DeferrableFigures> {
  const env = await createTestEnv('bench');
  const undoEnv = onTeardown('benchmark database', () => env.cleanup());
  const db = new Client({ connectionString: env.databaseUrl, application_name: 'deferrable-bench' });
  await db.connect();
  await db.query(SQL.KEEP_FIRED_TRIGGERS);
  await db.query(SQL.KEEP_DELETED_TASKS);
  const sampler = o.retention ? new TableRowsSampler() : null;
  const apps: AppProcess[] = [];
  const undoApps = onTeardown('app processes', async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await db.end().catch(() => undefined);
  });
  try {
    await startApps(env, o, db, apps);
    const countersBefore = await readCounters(env.databaseUrl);
    const redisBefore = await redisCommands(env.redis);
    const cpuBefore = cpuSnapshot();
    const { startedAt, statements } = await drive(db, o, sampler);
    const cpuAfter = cpuSnapshot();
    // Retention catches up with the last finished tasks (it runs every 500 ms).
    const tableRowsEnd = sampler
      ? await waitFor(
          async () => {
            const rows = await sampler.sample(db, true);
            return rows && rows.task_instance === 0 ? rows : null;
          },
          30_000,
          'retention to delete the finished tasks',
          250,
        )
      : null;
    const redisAfter = await redisCommands(env.redis);
    const backends = new Set((await db.query<{ pid: number }>(SQL.BACKEND_PIDS)).rows.map((r) => r.pid));
    const pidsOf = (n: AppName) => new Set(apps.filter((a) => a.name === n).map((a) => a.pid));
    const [schedulers, triggerers, workers] = [pidsOf('scheduler'), pidsOf('triggerer'), pidsOf('worker')];
    const cpu = cpuUsage(cpuBefore, cpuAfter, [
      { label: 'scheduler', pids: (pid) => schedulers.has(pid) },
      { label: 'triggerer', pids: (pid) => triggerers.has(pid) },
      { label: 'worker', pids: (pid) => workers.has(pid) },
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
      sqlRollbacksPerCycle: (countersAfter.rollbacks - countersBefore.rollbacks) / o.tasks,
      appProblems: problems(apps),
      tupleWritesPerCycle: perCycle(countersBefore, countersAfter, o.tasks),
      bullmqJobsPerCycle: (jobs.dispatch_jobs + jobs.event_jobs) / o.tasks,
      redisCommandsPerCycle: (redisAfter - redisBefore) / o.tasks,
      cpu,
      cpuMsPerCycle: cpuMsPer(cpu, ['scheduler', 'triggerer', 'worker', 'bench', 'postgres (this db)', 'redis'], o.tasks),
      tableRows: sampler && tableRowsEnd ? { max: sampler.max, end: tableRowsEnd } : null,
    };
  } finally {
    await undoApps();
    await undoEnv();
  }
}
