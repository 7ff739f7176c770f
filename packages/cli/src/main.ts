#!/usr/bin/env node
import { createDb, ensureDatabase, listJobs, listTaskTypes, migrate, taskTypeConflicts, type JobType } from '@deferrable/db';
import { Command, InvalidArgumentError, Option } from 'commander';
import { checkJobs, formatJobs, JOB_TYPES } from './jobs';
import { formatTaskTypes } from './task-types';

/** `deferrable`: operate a deployment (in the spirit of `airflow jobs list|check`). */
const program = new Command('deferrable').description('operate a Deferrable deployment');
const dbUrl = new Option('--database-url <url>', 'PostgreSQL URL').env('DATABASE_URL').default('postgresql://postgres@127.0.0.1:5432/deferrable');
const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a positive whole number');
  return n;
};
const threshold = new Option('--threshold-ms <ms>', 'a job whose heartbeat is older than this is dead')
  .env('DEFERRABLE_HEALTH_THRESHOLD_MS')
  .argParser(positiveInt)
  .default(10_000);
const jobType = () => new Option('--job-type <type>', 'scheduler, triggerer or worker').choices(JOB_TYPES);

const jobs = program.command('jobs').description('process jobs (one row per scheduler, triggerer and worker process)');

jobs
  .command('list')
  .description('list jobs: type, host, state, heartbeat age, load')
  .addOption(dbUrl)
  .addOption(threshold)
  .addOption(jobType())
  .option('--limit <n>', 'most recent n', positiveInt, 100)
  .option('--json', 'print JSON')
  .action(async (o: { databaseUrl: string; thresholdMs: number; jobType?: JobType; limit: number; json?: boolean }) => {
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const rows = await listJobs(db.pool, { jobType: o.jobType, limit: o.limit });
      console.log(o.json ? JSON.stringify(rows, null, 2) : formatJobs(rows, o.thresholdMs));
    } finally {
      await db.close();
    }
  });

jobs
  .command('check')
  .description('exit 0 when at least one job of the type is alive, 1 otherwise (for probes and scripts)')
  .addOption(dbUrl)
  .addOption(threshold)
  .addOption(jobType().default('triggerer'))
  .option('--hostname <host>', 'only jobs on this host')
  .option('--limit <n>', 'fail when more than n are alive', positiveInt)
  .action(async (o: { databaseUrl: string; thresholdMs: number; jobType: JobType; hostname?: string; limit?: number }) => {
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const result = await checkJobs(db.pool, o);
      console.log(result.message);
      process.exitCode = result.ok ? 0 : 1;
    } finally {
      await db.close();
    }
  });

program
  .command('task-types')
  .description('the task catalog: task types the workers registered')
  .command('list')
  .description('list task types (queue, tries, timeout, callbacks) and those live workers define differently')
  .addOption(dbUrl)
  .addOption(threshold)
  .option('--json', 'print JSON')
  .action(async (o: { databaseUrl: string; thresholdMs: number; json?: boolean }) => {
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const [types, conflicts] = await Promise.all([listTaskTypes(db.pool), taskTypeConflicts(db.pool, o.thresholdMs)]);
      console.log(o.json ? JSON.stringify({ taskTypes: types, conflicts }, null, 2) : formatTaskTypes(types, conflicts));
    } finally {
      await db.close();
    }
  });

program
  .command('migrate')
  .description('create the database if needed and apply migrations')
  .addOption(dbUrl)
  .action(async (o: { databaseUrl: string }) => {
    await ensureDatabase(o.databaseUrl);
    const r = await migrate(o.databaseUrl);
    console.log(`migrations: ${r.applied.length} applied, ${r.alreadyApplied.length} already applied`);
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`deferrable: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 2;
});
