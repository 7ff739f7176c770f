#!/usr/bin/env node
import {
  type ApiRole,
  createApiToken,
  createDb,
  ensureDatabase,
  listApiTokens,
  listJobs,
  listTaskTypes,
  migrate,
  revokeApiToken,
  taskTypeConflicts,
  type JobType,
} from '@deferrable/db';
import { Command, InvalidArgumentError, Option } from 'commander';
import { checkJobs, formatJobs, JOB_TYPES } from './jobs';
import { formatTaskTypes } from './task-types';
import { formatTokens, parseDuration } from './tokens';

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

const tokens = program
  .command('tokens')
  .description('API tokens (each with a role: viewer reads, operator also enqueues, cancels and retries, admin also manages tokens)');

tokens
  .command('create')
  .description('create a token and print its secret (shown this once; only a hash is kept)')
  .addOption(dbUrl)
  .addOption(new Option('--role <role>', 'what the token may do').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
  .requiredOption('--name <name>', 'who or what uses it (shown in the audit log as api:<name>)')
  .option('--expires-in <duration>', 'lifetime, such as 30d, 12h or 45m (default: no expiry)', (v: string) => {
    const ms = parseDuration(v);
    if (ms === null) throw new InvalidArgumentError('a duration such as 30d, 12h or 45m');
    return ms;
  })
  .option('--json', 'print JSON')
  .action(async (o: { databaseUrl: string; role: ApiRole; name: string; expiresIn?: number; json?: boolean }) => {
    if (!/^[A-Za-z0-9_.@-]{1,100}$/.test(o.name)) throw new InvalidArgumentError('--name: 1 to 100 letters, digits and _ . @ -');
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const expiresAt = o.expiresIn === undefined ? null : new Date(Date.now() + o.expiresIn);
      const { token, secret } = await createApiToken(db.pool, { name: o.name, role: o.role, expiresAt });
      if (o.json) console.log(JSON.stringify({ ...token, secret }, null, 2));
      else console.log(`${secret}\n\ntoken ${token.id} (${token.role}, ${token.name}) created; the secret above is shown only now.`);
    } finally {
      await db.close();
    }
  });

tokens
  .command('list')
  .description('list tokens: name, role, status, expiry, last use')
  .addOption(dbUrl)
  .option('--json', 'print JSON')
  .action(async (o: { databaseUrl: string; json?: boolean }) => {
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const rows = await listApiTokens(db.pool);
      console.log(o.json ? JSON.stringify(rows, null, 2) : formatTokens(rows));
    } finally {
      await db.close();
    }
  });

tokens
  .command('revoke')
  .description('revoke a token for good (the API refuses it within a few seconds)')
  .argument('<id>', 'the token id (from tokens list)')
  .addOption(dbUrl)
  .action(async (id: string, o: { databaseUrl: string }) => {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new InvalidArgumentError('<id>: a token id (a UUID) from `deferrable tokens list`');
    const db = createDb({ url: o.databaseUrl, poolMax: 1, applicationName: 'deferrable-cli' });
    try {
      const revoked = await revokeApiToken(db.pool, id);
      console.log(revoked ? `token ${id} revoked` : `no live token ${id}`);
      process.exitCode = revoked ? 0 : 1;
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
