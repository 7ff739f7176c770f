import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createDb, createKwargsCipher, DEFAULT_MIGRATIONS_DIR, migrate, readMigrations, type Db } from '@deferrable/db';
import { DeferrableClient } from '@deferrable/sdk';
import { databaseUrlFor, deleteKeys, dropDatabase, PG_ADMIN_URL, REDIS_URL, stopApps, type AppProcess } from '@deferrable/testkit';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { startApps, waitAll } from './helpers';

/**
 * The migrations on main before the task catalog and retention landed. The rows below are written
 * with plain SQL against exactly this schema, as the apps of that time wrote them.
 */
const BEFORE = ['20261125000000_init', '20261125200000_lean_writes', '20261126020000_trigger_claim_indexes'];

/**
 * An upgrade with work in flight: a database created by the earlier migrations holds a run whose
 * worker is gone, a deferred task whose timer is about to fire and a scheduled task; it is
 * migrated to the current migrations and the current apps start on it. Every one of those tasks
 * finishes.
 */
describe('upgrade: tasks in flight under the earlier migrations finish after migrating to the current ones', () => {
  const name = `dft_upgrade_${process.pid}_${randomBytes(4).toString('hex')}`;
  const databaseUrl = databaseUrlFor(name);
  const prefix = `{dft-upgrade-${randomBytes(4).toString('hex')}}`;
  const earlier = mkdtempSync(path.join(tmpdir(), 'dft-upgrade-'));
  let db: Db | undefined;
  let client: DeferrableClient | undefined;
  let apps: AppProcess[] = [];

  beforeAll(async () => {
    const admin = new Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    for (const m of BEFORE) cpSync(path.join(DEFAULT_MIGRATIONS_DIR, m), path.join(earlier, m), { recursive: true });
  });

  afterAll(async () => {
    await stopApps(apps);
    await client?.close();
    await db?.close();
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
    await deleteKeys(redis, prefix);
    redis.disconnect();
    await dropDatabase(name);
    rmSync(earlier, { recursive: true, force: true });
  });

  test('a run whose worker is gone, a deferred task with its timer due, a scheduled task: all succeed', async () => {
    expect((await migrate(databaseUrl, earlier)).applied).toEqual(BEFORE);
    db = createDb({ url: databaseUrl, poolMax: 2, applicationName: 'deferrable-upgrade-test' });
    const pool = db.pool;

    // A worker that died mid-run: its job row and its run's heartbeat stopped an hour ago.
    const goneWorker = randomUUID();
    await pool.query(
      `INSERT INTO job (id, job_type, hostname, pid, state, capacity, queues, started_at, latest_heartbeat)
       VALUES ($1, 'worker', 'gone-host', 999999, 'running', 4, ARRAY['default'], now() - interval '2 hours', now() - interval '1 hour')`,
      [goneWorker],
    );
    const running = randomUUID();
    await pool.query(
      `INSERT INTO task_instance (id, task_name, args, state, try_number, max_tries, retry_delay_ms, dispatch_attempt, queued_at,
                                  worker_id, heartbeat_at, started_at, last_actor)
       VALUES ($1, 'test.blocking-wait', '{"ms": 10}', 'running', 1, 2, 100, 1, now() - interval '1 hour',
               $2, now() - interval '1 hour', now() - interval '1 hour', 'upgrade-test')`,
      [running, goneWorker],
    );
    // A deferred task and its timer trigger (kwargs encrypted with the development key the apps use),
    // due in about a second, in one statement as a worker's deferral writes them.
    const deferred = randomUUID();
    const trigger = randomUUID();
    const moment = new Date(Date.now() + 1500).toISOString();
    await pool.query(
      `WITH t AS (INSERT INTO trigger (id, classpath, kwargs) VALUES ($2, 'datetime', $3) RETURNING id)
       INSERT INTO task_instance (id, task_name, args, state, dispatch_attempt, started_at, trigger_id, next_method, next_kwargs, last_actor)
       SELECT $1, 'test.defer-once', '{"delayMs": 1000, "tag": "upgraded"}', 'deferred', 1, now(), t.id, 'resume', '{"kwargs": {"tag": "upgraded"}}', 'upgrade-test' FROM t`,
      [deferred, trigger, createKwargsCipher([DEV_KWARGS_KEY]).encrypt({ moment })],
    );
    const scheduled = randomUUID();
    await pool.query(
      `INSERT INTO task_instance (id, task_name, args, state, last_actor) VALUES ($1, 'test.blocking-wait', '{"ms": 10}', 'scheduled', 'upgrade-test')`,
      [scheduled],
    );

    // Upgrade: the earlier migrations stay as they were applied; the newer ones are applied now.
    const current = readMigrations().map((m) => m.name);
    expect(current.slice(0, BEFORE.length)).toEqual(BEFORE);
    const upgraded = await migrate(databaseUrl);
    expect(upgraded).toEqual({ alreadyApplied: BEFORE, applied: current.slice(BEFORE.length) });

    apps = await startApps({ DATABASE_URL: databaseUrl, REDIS_URL, DEFERRABLE_PREFIX: prefix, LOG_LEVEL: 'info' });
    client = new DeferrableClient({ databaseUrl, redisUrl: REDIS_URL, prefix, actor: 'upgrade-test' });
    const views = await waitAll(client, [running, deferred, scheduled], 45_000);
    expect(views.map((v) => [v.id, v.state])).toEqual([
      [running, 'success'],
      [deferred, 'success'],
      [scheduled, 'success'],
    ]);
    // The run of the gone worker was reaped and retried; the deferred task resumed with its event.
    expect(views[0]!.result).toEqual({ waited: 10 });
    const { rows: log } = await pool.query<{ t: string }>(
      `SELECT try_number || ':' || coalesce(from_state::text, 'null') || '->' || to_state AS t FROM task_transition WHERE task_instance_id = $1 ORDER BY at, id`,
      [running],
    );
    expect(log.map((r) => r.t)).toEqual([
      '1:null->running',
      '1:running->up_for_retry',
      '2:up_for_retry->scheduled',
      '2:scheduled->queued',
      '2:queued->running',
      '2:running->success',
    ]);
    const resumed = views[1]!.result as { event: { moment: string }; kwargs: { tag: string }; tryNumber: number };
    expect(resumed.kwargs).toEqual({ tag: 'upgraded' });
    expect(resumed.event.moment).toBe(moment);
    expect(resumed.tryNumber).toBe(1);
  }, 90_000);
});
