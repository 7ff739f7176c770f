import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEV_KWARGS_KEY } from '@deferrable/config';
import { createKwargsCipher } from '@deferrable/db';
import { AppProcess } from '@deferrable/testkit';
import { START_TIMEOUT_MS, startSystem, waitFor, type E2E } from './helpers';
import { allTerminal, auditOnce, bulkDefer, bulkDeferOnFile, bulkEnqueue, countHeldBy, HEALTH_THRESHOLD_MS, HolderWatch, startTriggerer } from './triggerers';

const CLI = path.resolve(__dirname, '../../packages/cli/dist/main.js');

/** Runs the CLI as its own process; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a trigger that blocks the event loop is named, and the other triggers keep firing', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('blocking', { DEFERRABLE_BLOCK_WARN_MS: '200', DEFERRABLE_WORKER_SLOTS: '16' });
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('a 600 ms busy-wait is logged with its trigger id and type; timers on the same replica still fire', async () => {
    const triggerer = sys.app('triggerer');
    // The blocking trigger and 30 timers, all on the one triggerer, due around the same moment.
    const [blockingId] = await bulkEnqueue(sys.env, 'test.defer-on-blocking', [{ afterMs: 2500, blockMs: 600 }]);
    const timerIds = await bulkEnqueue(
      sys.env,
      'test.defer-once',
      Array.from({ length: 30 }, (_, i) => ({ delayMs: 2000 + i * 40 })),
    );
    const ids = [blockingId!, ...timerIds];
    const blockingTrigger = await waitFor(
      async () => {
        const r = await sys.env.db.pool.query<{ trigger_id: string }>("SELECT trigger_id FROM task_instance WHERE id = $1 AND state = 'deferred'", [
          blockingId,
        ]);
        return r.rows[0]?.trigger_id;
      },
      30_000,
      'the blocking task deferred',
    );
    await waitFor(() => allTerminal(sys.env, ids), 45_000, 'all tasks terminal');

    const blocked = triggerer.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('a trigger blocked the event loop'));
    console.log(
      `blocked-loop reports: ${JSON.stringify(blocked.map(({ triggerId, triggerType, taskInstanceId, blockedMs }) => ({ triggerId, triggerType, taskInstanceId, blockedMs })))}`,
    );
    expect(blocked).toContainEqual(
      expect.objectContaining({ triggerId: blockingTrigger, triggerType: 'test.blocking', taskInstanceId: blockingId, blockedMs: expect.any(Number) }),
    );
    const report = blocked.find((r) => r.triggerId === blockingTrigger)!;
    expect(report.blockedMs as number).toBeGreaterThanOrEqual(590);

    // Every task succeeded once, the blocking one with its event, every timer with its own.
    expect(await auditOnce(sys.env, ids)).toEqual({ tasks: ids.length, succeeded: ids.length, notResumedOnce: 0, notSucceededOnce: 0 });
    const { rows } = await sys.env.db.pool.query<{ id: string; moment: string; fired: string }>(
      "SELECT id, result #>> '{event,moment}' AS moment, result #>> '{event,firedAt}' AS fired FROM task_instance WHERE id = ANY($1::uuid[])",
      [timerIds],
    );
    const lateness = rows.map((r) => Date.parse(r.fired) - Date.parse(r.moment)).sort((a, b) => a - b);
    console.log(`timers beside the blocking trigger: lateness min ${lateness[0]} ms, max ${lateness[lateness.length - 1]} ms`);
    expect(lateness).toHaveLength(timerIds.length);
    for (const l of lateness) expect(l).toBeGreaterThanOrEqual(0);
    const blockingResult = (await sys.client.get(blockingId!))!.result as { event: { blockedMs: number } };
    expect(blockingResult.event).toEqual({ blockedMs: 600 });
    expect(triggerer.running).toBe(true);
  }, 180_000);
});

describe("trigger queues: a replica restricted to one queue runs only that queue's triggers", () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('trigqueues', { DEFERRABLE_WORKER_SLOTS: '16' }, ['scheduler', 'worker']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  test("'heavy' triggers run only on the 'heavy' replica, 'default' ones only on the default replica; all tasks complete", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dft-trigqueues-'));
    const fire = path.join(dir, 'fire');
    const watch = new HolderWatch(sys.env, 100).start();
    try {
      const heavy = await startTriggerer(sys, { DEFERRABLE_TRIGGERER_QUEUES: 'heavy' });
      // File triggers: none fires before the test creates the file, so the watch sees each one held.
      const heavyIds = (await bulkDeferOnFile(sys.env, 30, fire, 200, 'heavy')).taskIds;
      const defaultIds = (await bulkDeferOnFile(sys.env, 30, fire, 200, 'default')).taskIds;
      const ids = [...heavyIds, ...defaultIds];
      const heldCount = async (queue: string, holder: string | null) =>
        (
          await sys.env.db.pool.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM trigger WHERE coalesce(queue, 'default') = $1 AND event IS NULL AND triggerer_id IS NOT DISTINCT FROM $2::uuid",
            [queue, holder],
          )
        ).rows[0]!.n;
      // Alone, the heavy replica takes every heavy trigger and leaves the default ones unclaimed.
      await waitFor(
        async () => (await heldCount('heavy', heavy.id)) === 30 && (await heldCount('default', null)) === 30,
        30_000,
        'heavy held, default waiting',
      );
      // One more heavy trigger, written after every default one exists: once the heavy replica has
      // claimed it, it has run a claim that could have seen the default ones, and left them.
      const probe = await bulkDeferOnFile(sys.env, 1, fire, 200, 'heavy');
      ids.push(...probe.taskIds);
      await waitFor(async () => (await countHeldBy(sys.env, probe.triggerIds, [heavy.id])) === 1, 30_000, 'the probe claimed');
      expect(await heldCount('default', null)).toBe(30);
      // A default replica then takes the default ones.
      const general = await startTriggerer(sys);
      await waitFor(async () => (await heldCount('default', general.id)) === 30, 30_000, 'default held by the default replica');
      await waitFor(() => watch.seen.size === ids.length || undefined, 10_000, 'the watch to see every trigger held');
      writeFileSync(fire, 'now');
      await waitFor(() => allTerminal(sys.env, ids), 45_000, 'all tasks terminal');
      await watch.stop();

      const byQueue = (queue: string) => [...watch.seen.values()].filter((e) => (e.queue ?? 'default') === queue);
      expect(byQueue('heavy')).toHaveLength(31);
      expect(byQueue('default')).toHaveLength(30);
      expect(byQueue('heavy').filter((e) => e.holders.some((h) => h !== heavy.id))).toEqual([]);
      expect(byQueue('default').filter((e) => e.holders.some((h) => h !== general.id))).toEqual([]);
      expect(await auditOnce(sys.env, ids)).toEqual({ tasks: ids.length, succeeded: ids.length, notResumedOnce: 0, notSucceededOnce: 0 });
    } finally {
      await watch.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('jobs check: fails when every triggerer is dead, passes when one is alive', () => {
  let sys: E2E;
  beforeAll(async () => {
    sys = await startSystem('jobscheck', {}, ['triggerer']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  const check = (thresholdMs = HEALTH_THRESHOLD_MS) =>
    cli(['jobs', 'check', '--job-type', 'triggerer', '--database-url', sys.env.databaseUrl, '--threshold-ms', String(thresholdMs)]);
  const heartbeatAge = async (pid: number) =>
    (
      await sys.env.db.pool.query<{ age: number }>(
        "SELECT (extract(epoch FROM now() - latest_heartbeat) * 1000)::float8 AS age FROM job WHERE job_type = 'triggerer' AND pid = $1",
        [pid],
      )
    ).rows[0]!.age;

  // "Alive" is checked with a long threshold: on a busy machine a live triggerer's heartbeat can be
  // seconds old, which the short one would call dead. "Dead" is checked once the heartbeat of the
  // killed one is older than the short threshold, which then only grows.
  const ALIVE_THRESHOLD_MS = 30_000;

  test('alive: passes; cleanly stopped: fails at once; alive again: passes; kill -9 and past the threshold: fails', async () => {
    const first = await check(ALIVE_THRESHOLD_MS);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toMatch(/Found 1 alive triggerer/);

    // A clean stop marks the row ended: the check fails at once, even with a threshold so long
    // that the row's heartbeat still counts as fresh.
    const stopped = sys.app('triggerer');
    await stopped.stop();
    const afterStop = await check(60_000);
    expect(afterStop).toMatchObject({ code: 1 });
    expect(afterStop.stdout).toMatch(/No alive triggerer/);

    const victim = new AppProcess('triggerer', sys.env.appEnv());
    sys.apps.push(victim);
    await victim.started(START_TIMEOUT_MS);
    expect(await check(ALIVE_THRESHOLD_MS)).toMatchObject({ code: 0 });

    victim.kill('SIGKILL');
    await victim.exited;
    // Its row still says running; once its heartbeat is older than the threshold it is dead.
    await waitFor(async () => (await heartbeatAge(victim.pid)) > HEALTH_THRESHOLD_MS, 30_000, 'heartbeat older than the threshold');
    const dead = await check();
    expect(dead).toMatchObject({ code: 1 });
    expect(dead.stdout).toMatch(/No alive triggerer/);
    const list = await cli(['jobs', 'list', '--database-url', sys.env.databaseUrl, '--threshold-ms', String(HEALTH_THRESHOLD_MS)]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`triggerer\\s+\\S+\\s+${victim.pid}\\s+running\\s+no\\s`));
    expect(list.stdout).toMatch(new RegExp(`triggerer\\s+\\S+\\s+${stopped.pid}\\s+success\\s+no\\s`));
  }, 240_000);
});

describe('triggers that do not start, or are held here without running, do not hold up the others', () => {
  let sys: E2E;
  beforeAll(async () => {
    // No triggerer yet: each test starts one when its triggers are in place.
    sys = await startSystem('trigger-start', { DEFERRABLE_WORKER_SLOTS: '16' }, ['scheduler', 'worker']);
  });
  afterAll(async () => {
    await sys?.close();
  });

  test('a trigger that throws as it starts fails its own task; the rest of its claim batch runs', async () => {
    // The failing trigger first (oldest), then ten timers: one claim batch when the replica starts.
    const badTask = randomUUID();
    const badTrigger = randomUUID();
    // One statement, as a worker's deferral writes it: a trigger row alone would be an orphan that
    // the scheduler's cleanup may delete before the task row names it.
    await sys.env.db.pool.query(
      `WITH t AS (INSERT INTO trigger (id, classpath, kwargs) VALUES ($2, 'test.bad-due', $3) RETURNING id)
       INSERT INTO task_instance (id, task_name, state, started_at, trigger_id, next_method, next_kwargs, last_actor)
       SELECT $1, 'test.defer-on-bad-due', 'deferred', now(), t.id, 'resume', '{"kwargs": {}}'::jsonb, 'e2e' FROM t`,
      [badTask, badTrigger, createKwargsCipher([DEV_KWARGS_KEY]).encrypt({})],
    );
    const timers = await bulkDefer(
      sys.env,
      Array.from({ length: 10 }, () => new Date(Date.now() + 1500)),
    );
    const replica = await startTriggerer(sys);
    // Before the fix the claim stopped at the failing trigger: the ten timers stayed assigned to
    // the replica, never started, and no other replica would take them.
    await waitFor(() => allTerminal(sys.env, [badTask, ...timers.taskIds]), 20_000, 'all tasks terminal');
    expect(await auditOnce(sys.env, timers.taskIds)).toEqual({ tasks: 10, succeeded: 10, notResumedOnce: 0, notSucceededOnce: 0 });
    const bad = (await sys.client.get(badTask))!;
    expect(bad.state).toBe('failed');
    expect(bad.error?.message).toMatch(/no due time/);
    expect(replica.app.logs.some((r) => r.msg === 'trigger cannot run' && r.triggerId === badTrigger)).toBe(true);
    replica.app.kill('SIGTERM');
    await replica.app.exited;
  });

  test('a trigger that ignores its cancellation does not hold up a SIGTERM: its trigger is handed back after the grace period', async () => {
    const replica = await startTriggerer(sys, { DEFERRABLE_SHUTDOWN_GRACE_MS: '1000' });
    const { id } = await sys.client.enqueue({ task: 'test.defer-on-deaf', args: { ms: 600_000 } });
    const triggerId = await waitFor(
      async () => {
        const r = await sys.env.db.pool.query<{ id: string }>(
          'SELECT t.id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id WHERE ti.id = $1 AND t.triggerer_id = $2',
          [id, replica.id],
        );
        return r.rows[0]?.id;
      },
      15_000,
      'the deaf trigger held',
    );
    replica.app.kill('SIGTERM');
    // The trigger ignores its signal for ten minutes: an exit of its own, code 0, is the stop not waiting for it.
    const exit = await Promise.race([replica.app.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000).unref())]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(replica.app.logs.find((r) => r.msg === 'triggers ignored their cancellation; stopping without them')?.triggerIds).toEqual([triggerId]);
    expect(replica.app.logs.find((r) => r.msg === 'triggerer stopped')?.released).toBe(1);
    const held = await sys.env.db.pool.query('SELECT triggerer_id FROM trigger WHERE id = $1', [triggerId]);
    expect(held.rows[0]?.triggerer_id).toBeNull();
    await sys.client.cancel(id);
  });

  test('triggers assigned to a live replica that does not run them (its claim committed, the answer was lost) are handed back and run', async () => {
    const replica = await startTriggerer(sys);
    // Parked on a queue nobody serves, then assigned to the replica behind its back.
    const { taskIds, triggerIds } = await bulkDefer(
      sys.env,
      Array.from({ length: 5 }, () => new Date(Date.now() + 500)),
      'parked',
    );
    const moved = await sys.env.db.pool.query('UPDATE trigger SET triggerer_id = $1, queue = NULL WHERE id = ANY($2::uuid[])', [replica.id, triggerIds]);
    expect(moved.rowCount).toBe(5);
    await waitFor(() => allTerminal(sys.env, taskIds), 20_000, 'all tasks terminal');
    expect(await auditOnce(sys.env, taskIds)).toEqual({ tasks: 5, succeeded: 5, notResumedOnce: 0, notSucceededOnce: 0 });
    expect(replica.app.logs.some((r) => r.msg === 'released triggers assigned here that were not running' && r.count === 5)).toBe(true);
  });
});
