import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createKwargsCipher } from '@deferrable/db';
import { AppProcess, createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { machineFacts } from './machine';
import { fmt, table } from './table';
import { onTeardown } from './teardown';

/**
 * `npm run bench -- triggerer`: one triggerer replica with N timer triggers (default 100,000) due
 * over about a minute, then a failover run (kill -9 of a replica holding 10,000 triggers).
 * Triggers are written straight into PostgreSQL as a deferral would write them (a deferred task
 * and an encrypted datetime trigger), so the figures are the triggerer's alone.
 */
export interface TriggererBenchOptions {
  triggers: number;
  failoverTriggers: number;
  /** Seconds from the start of the triggerer until the first trigger is due. */
  leadS: number;
  /** Seconds over which the triggers fall due. */
  spreadS: number;
  capacity: number;
}

export const TRIGGERER_TARGETS = { triggers: 100_000, heapBytesPerTrigger: 2048, latenessP99Ms: 50 };

// The triggerer's defaults (packages/config): the bound is what users get out of the box.
const HEARTBEAT_MS = 2000;
const HEALTH_THRESHOLD_MS = 10_000;
const CLAIM_INTERVAL_MS = 1000;

interface Status {
  heapUsed: number;
  rss: number;
  running: number;
  loopDelayMs: { p50: number; p99: number; max: number };
}

/** The app's /status; with `gc`, its heap figures taken right after a garbage collection (gc-preload.ts). */
async function status(app: AppProcess, gc = false): Promise<Status> {
  let net: { heapUsed: number; rss: number } | null = null;
  if (gc) {
    const hook = await app.waitForLog((r) => typeof r.benchGcPort === 'number', 30_000);
    net = (await (await fetch(`http://127.0.0.1:${hook.benchGcPort as number}/gc`)).json()) as { heapUsed: number; rss: number };
  }
  const line = await app.waitForLog((r) => typeof r.healthPort === 'number', 30_000);
  const res = await fetch(`http://127.0.0.1:${line.healthPort as number}/status`);
  return { ...((await res.json()) as Status), ...net };
}

function triggererEnv(env: TestEnv, extra: Record<string, string> = {}): Record<string, string> {
  return env.appEnv({
    // info: the health port is announced at info; steady state logs nothing per trigger.
    LOG_LEVEL: 'info',
    DEFERRABLE_HEALTH_PORT: '0',
    DEFERRABLE_HEARTBEAT_MS: String(HEARTBEAT_MS),
    DEFERRABLE_HEALTH_THRESHOLD_MS: String(HEALTH_THRESHOLD_MS),
    DEFERRABLE_CLAIM_INTERVAL_MS: String(CLAIM_INTERVAL_MS),
    DEFERRABLE_SYNC_INTERVAL_MS: '2000',
    ...extra,
  });
}

function start(env: TestEnv, extra: Record<string, string> = {}): AppProcess {
  const app = new AppProcess('triggerer', triggererEnv(env, extra), { nodeArgs: ['--expose-gc', '--require', path.join(__dirname, 'gc-preload.js')] });
  onTeardown(`triggerer ${app.pid}`, () => app.stop());
  return app;
}

/** Writes `moments.length` deferred tasks, each waiting on a datetime trigger at its moment. */
async function insertDeferred(env: TestEnv, moments: readonly Date[]): Promise<void> {
  const cipher = createKwargsCipher([DEV_KWARGS_KEY]);
  const chunk = 5000;
  for (let i = 0; i < moments.length; i += chunk) {
    const part = moments.slice(i, i + chunk);
    const triggerIds = part.map(() => randomUUID());
    const taskIds = part.map(() => randomUUID());
    const tokens = part.map((m) => cipher.encrypt({ moment: m.toISOString() }));
    await env.db.pool.query(
      `WITH t AS (
         INSERT INTO trigger (id, classpath, kwargs) SELECT unnest($1::uuid[]), 'datetime', unnest($2::text[]) RETURNING id
       )
       INSERT INTO task_instance (id, task_name, state, trigger_id, next_method, next_kwargs)
       SELECT unnest($3::uuid[]), 'bench.timer', 'deferred', unnest($1::uuid[]), 'resume', '{"kwargs":{}}'::jsonb`,
      [triggerIds, tokens, taskIds],
    );
  }
}

async function count(env: TestEnv, where: string, params: unknown[] = []): Promise<number> {
  const { rows } = await env.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM trigger WHERE ${where}`, params);
  return rows[0]!.n;
}

interface Figures {
  triggers: number;
  insert_s: number;
  claim_s: number;
  heap_bytes_per_trigger: number;
  rss_mb: number;
  lateness_p50_ms: number;
  lateness_p99_ms: number;
  lateness_max_ms: number;
  recorded_p99_ms: number;
  loop_delay_p99_ms: number;
  failover_triggers: number;
  failover_s: number;
  failover_bound_s: number;
}

async function steadyState(
  o: TriggererBenchOptions,
  log: (s: string) => void,
): Promise<Omit<Figures, 'failover_triggers' | 'failover_s' | 'failover_bound_s'>> {
  const env = await createTestEnv('benchtrig');
  // Dropped once: here at the end, or by the teardown if the run fails or is interrupted.
  const dropEnv = onTeardown('benchmark database', () => env.cleanup());

  // The empty process: same code, a queue with no triggers.
  const empty = start(env, { DEFERRABLE_TRIGGERER_QUEUES: 'nothing-here' });
  await empty.started();
  await new Promise((r) => setTimeout(r, 1000));
  const base = await status(empty, true);
  await empty.stop();
  log(`empty triggerer: heap ${fmt(base.heapUsed / 2 ** 20)} MiB, rss ${fmt(base.rss / 2 ** 20)} MiB`);

  const first = Date.now() + o.leadS * 1000;
  const moments = Array.from({ length: o.triggers }, (_, i) => new Date(first + Math.floor(((i * 0.6180339887498949) % 1) * o.spreadS * 1000)));
  const insertStart = Date.now();
  await insertDeferred(env, moments);
  const insertS = (Date.now() - insertStart) / 1000;
  log(`inserted ${o.triggers} deferred tasks and triggers in ${fmt(insertS)} s`);

  const app = start(env, { DEFERRABLE_TRIGGERER_CAPACITY: String(o.capacity) });
  await app.started(60_000);
  const startedAt = Date.now();
  await waitFor(async () => (await status(app)).running >= o.triggers, 120_000, 'all triggers running', 100);
  const claimS = (Date.now() - startedAt) / 1000;
  log(`all ${o.triggers} triggers running ${fmt(claimS)} s after the triggerer started`);
  if (Date.now() > first) log('warning: claiming took longer than the lead time; early triggers fired late');

  const steady = await status(app, true);
  const heapPerTrigger = (steady.heapUsed - base.heapUsed) / o.triggers;
  const rssMb = (steady.rss - base.rss) / 2 ** 20;
  log(`steady state: ${fmt(heapPerTrigger)} heap bytes per trigger, +${fmt(rssMb)} MiB rss`);

  await waitFor(async () => (await count(env, 'event IS NULL')) === 0, (o.leadS + o.spreadS + 120) * 1000, 'all fired', 500);
  const loop = (await status(app)).loopDelayMs;
  const { rows } = await env.db.pool.query<{ p50: number; p99: number; max: number; rec99: number }>(
    `WITH l AS (
       SELECT extract(epoch FROM ((event->'payload'->>'firedAt')::timestamptz - (event->'payload'->>'moment')::timestamptz)) * 1000 AS late,
              extract(epoch FROM (fired_at - (event->'payload'->>'moment')::timestamptz)) * 1000 AS recorded
       FROM trigger)
     SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY late)::float8 AS p50,
            percentile_disc(0.99) WITHIN GROUP (ORDER BY late)::float8 AS p99,
            max(late)::float8 AS max,
            percentile_disc(0.99) WITHIN GROUP (ORDER BY recorded)::float8 AS rec99
     FROM l`,
  );
  await app.stop();
  await dropEnv();
  const r = rows[0]!;
  return {
    triggers: o.triggers,
    insert_s: insertS,
    claim_s: claimS,
    heap_bytes_per_trigger: Math.round(heapPerTrigger),
    rss_mb: Number(rssMb.toFixed(1)),
    lateness_p50_ms: r.p50,
    lateness_p99_ms: r.p99,
    lateness_max_ms: r.max,
    recorded_p99_ms: r.rec99,
    loop_delay_p99_ms: Number(loop.p99.toFixed(1)),
  };
}

async function failover(o: TriggererBenchOptions, log: (s: string) => void): Promise<{ failover_s: number; failover_bound_s: number }> {
  const env = await createTestEnv('benchfail');
  const dropEnv = onTeardown('failover database', () => env.cleanup());
  const far = new Date(Date.now() + 3_600_000);
  await insertDeferred(
    env,
    Array.from({ length: o.failoverTriggers }, () => far),
  );
  const a = start(env);
  await a.started(60_000);
  await waitFor(async () => (await status(a)).running === o.failoverTriggers, 120_000, 'replica A holds all', 100);
  const b = start(env);
  await b.started(60_000);
  const bId = (await status(b)) as unknown as { triggererId: string };
  // B is alive and has claimed nothing: A is alive and holds everything.
  await new Promise((r) => setTimeout(r, 2 * CLAIM_INTERVAL_MS));
  if ((await count(env, 'triggerer_id = $1', [bId.triggererId])) !== 0) throw new Error('replica B took triggers from a live replica');
  const killedAt = Date.now();
  a.kill('SIGKILL');
  await waitFor(async () => (await status(b)).running === o.failoverTriggers, 120_000, 'all running on B', 25);
  const failoverS = (Date.now() - killedAt) / 1000;
  log(`failover: ${o.failoverTriggers} triggers running on the survivor ${fmt(failoverS)} s after kill -9`);
  await b.stop();
  await dropEnv();
  return { failover_s: failoverS, failover_bound_s: (HEALTH_THRESHOLD_MS + CLAIM_INTERVAL_MS) / 1000 };
}

export async function triggererBench(o: TriggererBenchOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const envForFacts = await createTestEnv('benchfacts');
  const facts = await machineFacts(envForFacts.redis);
  await envForFacts.cleanup();
  const steady = await steadyState(o, log);
  const fo = await failover(o, log);
  const figures: Figures = { ...steady, failover_triggers: o.failoverTriggers, ...fo };
  const verdict = (ok: boolean) => (ok ? 'MET' : 'MISSED');
  console.log(
    `machine: ${facts.cores} cores (${facts.cpuModel}), ${facts.memoryGiB} GiB, load ${facts.loadAvg1m}; node ${facts.node}, PostgreSQL ${facts.postgres}, Redis ${facts.redis}`,
  );
  console.log(
    table(
      ['metric', 'value', 'target', 'verdict'],
      [
        ['triggers on one replica', figures.triggers, `${TRIGGERER_TARGETS.triggers}`, verdict(figures.triggers >= TRIGGERER_TARGETS.triggers)],
        ['claim_s (all running)', figures.claim_s, '', ''],
        [
          'heap bytes per waiting trigger',
          figures.heap_bytes_per_trigger,
          `<= ${TRIGGERER_TARGETS.heapBytesPerTrigger}`,
          verdict(figures.heap_bytes_per_trigger <= TRIGGERER_TARGETS.heapBytesPerTrigger),
        ],
        ['rss MiB (net of the empty process)', figures.rss_mb, '', ''],
        ['lateness p50 ms (fire - due)', figures.lateness_p50_ms, '', ''],
        [
          'lateness p99 ms',
          figures.lateness_p99_ms,
          `<= ${TRIGGERER_TARGETS.latenessP99Ms}`,
          verdict(figures.lateness_p99_ms <= TRIGGERER_TARGETS.latenessP99Ms),
        ],
        ['lateness max ms', figures.lateness_max_ms, '', ''],
        ['recorded in PostgreSQL p99 ms (after due)', figures.recorded_p99_ms, '', ''],
        ['event-loop delay p99 ms', figures.loop_delay_p99_ms, '', ''],
        [
          `failover_s (kill -9, ${figures.failover_triggers} triggers)`,
          figures.failover_s,
          `<= ${figures.failover_bound_s}`,
          verdict(figures.failover_s <= figures.failover_bound_s),
        ],
      ],
    ),
  );
  console.log(JSON.stringify(figures));
}
