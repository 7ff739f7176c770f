import { randomUUID } from 'node:crypto';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { CHANNELS, createKwargsCipher } from '@deferrable/db';
import type { JsonObject } from '@deferrable/domain';
import { triggerCreatedChannel } from '@deferrable/queues';
import { AppProcess, FAST_ENV, type LogRecord, type TestEnv } from '@deferrable/testkit';
import { START_TIMEOUT_MS, type E2E } from './helpers';

/** Support for the triggerer-replica tests: replicas, who holds which trigger, bulk set-up, audits. */

export const HEALTH_THRESHOLD_MS = Number(FAST_ENV.DEFERRABLE_HEALTH_THRESHOLD_MS);
export const CLAIM_INTERVAL_MS = Number(FAST_ENV.DEFERRABLE_CLAIM_INTERVAL_MS);

export interface Replica {
  app: AppProcess;
  /** Its job row id, which is what `trigger.triggerer_id` holds. */
  id: string;
}

/** Starts a triggerer process (pushed into `sys.apps`, so close() stops it) and reads its job id. */
export async function startTriggerer(sys: E2E, extraEnv: Record<string, string> = {}): Promise<Replica> {
  const app = new AppProcess('triggerer', sys.env.appEnv(extraEnv));
  sys.apps.push(app);
  await app.started(START_TIMEOUT_MS);
  const line = await app.waitForLog((r) => r.msg === 'triggerer started');
  return { app, id: line.triggererId as string };
}

export async function startTriggerers(sys: E2E, n: number, extraEnv: Record<string, string> = {}): Promise<Replica[]> {
  return Promise.all(Array.from({ length: n }, () => startTriggerer(sys, extraEnv)));
}

export interface HeldTrigger {
  id: string;
  triggerer_id: string | null;
  queue: string | null;
}

/** How many of `ids` are unfired and held by one of `holders`. */
export async function countHeldBy(env: TestEnv, ids: readonly string[], holders: readonly string[]): Promise<number> {
  const { rows } = await env.db.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM trigger WHERE id = ANY($1::uuid[]) AND event IS NULL AND triggerer_id = ANY($2::uuid[])',
    [ids, holders],
  );
  return rows[0]!.n;
}

/** Ids of the unfired triggers `triggererId` holds. */
export async function triggersOf(env: TestEnv, triggererId: string): Promise<string[]> {
  const { rows } = await env.db.pool.query<{ id: string }>('SELECT id FROM trigger WHERE triggerer_id = $1 AND event IS NULL', [triggererId]);
  return rows.map((r) => r.id);
}

/** Every task of `ids` is deferred and its trigger is held by some replica. */
export async function allDeferredAndHeld(env: TestEnv, ids: readonly string[]): Promise<boolean> {
  const { rows } = await env.db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id
     WHERE ti.id = ANY($1::uuid[]) AND ti.state = 'deferred' AND t.triggerer_id IS NOT NULL AND t.event IS NULL`,
    [ids],
  );
  return rows[0]!.n === ids.length;
}

/**
 * Watches `trigger.triggerer_id` every `intervalMs`: for each trigger, every replica seen holding it
 * (in order). Triggers are deleted once their task resumed, so the watch keeps what it saw.
 */
export class HolderWatch {
  readonly seen = new Map<string, { queue: string | null; holders: string[] }>();
  /** The oldest heartbeat seen per running triggerer job row, in ms (sampled with the holders). */
  readonly maxHeartbeatAgeMs = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly env: TestEnv,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    const tick = () => {
      // A failed sample (the database going away at the end) is skipped, not thrown at a timer.
      this.running = this.sample()
        .catch(() => undefined)
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
    return this;
  }

  async sample(): Promise<void> {
    const [{ rows }, jobs] = await Promise.all([
      this.env.db.pool.query<HeldTrigger>('SELECT id, triggerer_id, queue FROM trigger WHERE triggerer_id IS NOT NULL'),
      this.env.db.pool.query<{ id: string; age: number }>(
        "SELECT id, (extract(epoch FROM now() - latest_heartbeat) * 1000)::float8 AS age FROM job WHERE job_type = 'triggerer' AND state = 'running'",
      ),
    ]);
    for (const j of jobs.rows) this.maxHeartbeatAgeMs.set(j.id, Math.max(this.maxHeartbeatAgeMs.get(j.id) ?? 0, Math.round(j.age)));
    for (const r of rows) {
      const entry = this.seen.get(r.id) ?? { queue: r.queue, holders: [] };
      if (entry.holders[entry.holders.length - 1] !== r.triggerer_id) entry.holders.push(r.triggerer_id!);
      this.seen.set(r.id, entry);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** How many triggers each replica was the first to hold. */
  firstHolders(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { holders } of this.seen.values()) counts.set(holders[0]!, (counts.get(holders[0]!) ?? 0) + 1);
    return counts;
  }

  /** Triggers seen with more than one holder. */
  moved(): string[] {
    return [...this.seen].filter(([, e]) => e.holders.length > 1).map(([id]) => id);
  }
}

export interface OnceAudit {
  tasks: number;
  succeeded: number;
  /** Tasks whose audit log does not show exactly one deferred -> scheduled. */
  notResumedOnce: number;
  /** Tasks whose audit log does not show exactly one running -> success. */
  notSucceededOnce: number;
}

/** Exactly-once, from the audit log, in one aggregate query. */
export async function auditOnce(env: TestEnv, ids: readonly string[]): Promise<OnceAudit> {
  const { rows } = await env.db.pool.query<OnceAudit>(
    `SELECT count(*)::int AS tasks,
            count(*) FILTER (WHERE ti.state = 'success')::int AS succeeded,
            count(*) FILTER (WHERE coalesce(x.resumed, 0) <> 1)::int AS "notResumedOnce",
            count(*) FILTER (WHERE coalesce(x.succeeded, 0) <> 1)::int AS "notSucceededOnce"
     FROM task_instance ti
     LEFT JOIN (
       SELECT task_instance_id,
              count(*) FILTER (WHERE from_state = 'deferred' AND to_state = 'scheduled') AS resumed,
              count(*) FILTER (WHERE from_state = 'running' AND to_state = 'success') AS succeeded
       FROM task_transition WHERE task_instance_id = ANY($1::uuid[]) GROUP BY task_instance_id
     ) x ON x.task_instance_id = ti.id
     WHERE ti.id = ANY($1::uuid[])`,
    [ids],
  );
  return rows[0]!;
}

/** Resolves when every task of `ids` is in a terminal state. */
export async function allTerminal(env: TestEnv, ids: readonly string[]): Promise<boolean> {
  const { rows } = await env.db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM task_instance WHERE id = ANY($1::uuid[]) AND state IN ('success', 'failed', 'skipped', 'cancelled')",
    [ids],
  );
  return rows[0]!.n === ids.length;
}

/**
 * Enqueues scheduled task instances in one statement (what `client.enqueue` writes, without its
 * per-row commit), then wakes the scheduler. Returns the ids in the order of `args`.
 */
export async function bulkEnqueue(env: TestEnv, task: string, args: readonly unknown[]): Promise<string[]> {
  const ids = args.map(() => randomUUID());
  await env.db.pool.query(
    `WITH ins AS (
       INSERT INTO task_instance (id, task_name, args, state, last_actor)
       SELECT id, $3, a, 'scheduled', 'e2e-bulk' FROM unnest($1::uuid[], $2::jsonb[]) AS v(id, a)
       RETURNING 1
     )
     SELECT count(*), pg_notify($4, '') FROM ins`,
    [ids, args.map((a) => JSON.stringify(a)), task, CHANNELS.taskScheduled],
  );
  return ids;
}

export interface BulkDeferred {
  taskIds: string[];
  triggerIds: string[];
}

/**
 * Writes deferred `test.defer-once` tasks with timer triggers due at `moments` straight into the
 * state of record (what a worker's deferral writes: the trigger row, then the task deferred on it,
 * kwargs encrypted with the development key the apps use), then hints the triggerers.
 */
export async function bulkDefer(env: TestEnv, moments: readonly Date[], queue: string | null = null): Promise<BulkDeferred> {
  return bulkDeferOn(
    env,
    'datetime',
    moments.map((m) => ({ moment: m.toISOString() })),
    queue,
  );
}

/**
 * Like `bulkDefer`, on `n` file triggers that all wait for one `path`: nothing fires until the test
 * creates the file, so a test can move triggers between replicas for as long as it needs without
 * racing their due times.
 */
export async function bulkDeferOnFile(env: TestEnv, n: number, path: string, pollIntervalMs = 200, queue: string | null = null): Promise<BulkDeferred> {
  return bulkDeferOn(
    env,
    'file',
    Array.from({ length: n }, () => ({ path, pollIntervalMs })),
    queue,
  );
}

async function bulkDeferOn(env: TestEnv, classpath: string, kwargsList: readonly JsonObject[], queue: string | null): Promise<BulkDeferred> {
  const cipher = createKwargsCipher([DEV_KWARGS_KEY]);
  const taskIds = kwargsList.map(() => randomUUID());
  const triggerIds = kwargsList.map(() => randomUUID());
  const kwargs = kwargsList.map((k) => cipher.encrypt(k));
  const client = await env.db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO trigger (id, classpath, kwargs, queue)
       SELECT id, $4, kwargs, $3 FROM unnest($1::uuid[], $2::text[]) AS v(id, kwargs)`,
      [triggerIds, kwargs, queue, classpath],
    );
    await client.query(
      `INSERT INTO task_instance (id, task_name, args, state, started_at, trigger_id, next_method, next_kwargs, last_actor)
       SELECT id, 'test.defer-once', '{"delayMs": 0}'::jsonb, 'deferred', now(), trigger_id, 'resume', '{"kwargs": {"tag": null}}'::jsonb, 'e2e-bulk'
       FROM unnest($1::uuid[], $2::uuid[]) AS v(id, trigger_id)`,
      [taskIds, triggerIds],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
  // The hint a worker's deferral sends; triggerers also poll, so it only saves a claim interval.
  await env.redis.publish(triggerCreatedChannel(env.prefix), queue ?? 'default');
  return { taskIds, triggerIds };
}

export function logsWith(app: AppProcess, msg: string): LogRecord[] {
  return app.logs.filter((r) => r.msg === msg);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
