/**
 * Walks task instances through the hot-path SQL against a real, migrated PostgreSQL database:
 * every statement is a compare-and-set, so the interesting cases are the ones that must NOT match.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { canTransition, FAIL_METHOD, type TaskState } from '@deferrable/domain';
import { createTestEnv, waitFor, type TestEnv } from '@deferrable/testkit';
import { Client, type Pool } from 'pg';
import type { Queryable } from '../client';
import { insertTaskInstance, type NewTaskInstance } from './enqueue';
import { dispatchDueWithin, dispatchIds, redispatch, staleQueued } from './dispatch';
import { endJob, heartbeatJob, listJobs, registerJob } from './jobs';
import { cancelTask, deleteOrphanTriggers, lockStaleRuns } from './recovery';
import { recordRejection } from './rejections';
import { firedUnapplied, resumeFromTriggers, retriesDue, timeoutDeferrals } from './resume';
import { CHANNELS, type DispatchRow } from './rows';
import { deferRun, deferRuns, failRun, heartbeatRuns, startRun, startRuns, succeedRun, succeedRuns, type DeferKey } from './run';
import { assignedTriggerCount, assignedTriggerIds, claimTriggers, recordTriggerOutcomes, releaseTriggers, triggererLoad } from './triggers';

const ACTOR = 'lifecycle-test';

let env: TestEnv;
let pool: Pool;

beforeAll(async () => {
  env = await createTestEnv('lifecycle');
  pool = env.db.pool;
});

afterAll(async () => {
  await env?.cleanup();
});

// Each test starts from empty tables, so that "due" and "orphan" scans see only its own rows.
beforeEach(async () => {
  await pool.query('TRUNCATE task_transition, task_instance, trigger, task_type_registration, task_type, job, rejection');
});

// ---------------------------------------------------------------------------------------------

/** Dispatch with no backlog mark: what the scheduler does while every queue has room. */
async function dispatchDue(db: Queryable, limit: number, actor: string): Promise<DispatchRow[]> {
  return (await dispatchDueWithin(db, limit, actor, { ahead: Number.MAX_SAFE_INTEGER, workersAliveWithinMs: 0 })).rows;
}

interface TaskRow {
  id: string;
  state: TaskState;
  try_number: number;
  max_tries: number;
  dispatch_attempt: number;
  queued_at: Date | null;
  trigger_id: string | null;
  trigger_timeout: Date | null;
  next_method: string | null;
  next_kwargs: Record<string, unknown> | null;
  worker_id: string | null;
  heartbeat_at: Date | null;
  run_after: Date;
  updated_at: Date;
  result: unknown;
  error: unknown;
  started_at: Date | null;
  ended_at: Date | null;
  last_actor: string | null;
}

function newTask(over: Partial<NewTaskInstance> = {}): NewTaskInstance {
  return {
    id: randomUUID(),
    taskName: 'test.task',
    args: { n: 1 },
    queue: 'default',
    priority: 0,
    maxTries: 3,
    retryDelayMs: 1000,
    retryBackoff: 2,
    retryMaxDelayMs: 60_000,
    executionTimeoutMs: null,
    runAfter: null,
    idempotencyKey: null,
    actor: ACTOR,
    ...over,
  };
}

async function task(id: string): Promise<TaskRow> {
  const { rows } = await pool.query<TaskRow>('SELECT * FROM task_instance WHERE id = $1', [id]);
  if (!rows[0]) throw new Error(`no task ${id}`);
  return rows[0];
}

async function triggerRow(id: string) {
  const { rows } = await pool.query<{
    id: string;
    classpath: string;
    kwargs: string;
    queue: string | null;
    triggerer_id: string | null;
    event: unknown;
    fired_at: Date | null;
  }>('SELECT * FROM trigger WHERE id = $1', [id]);
  return rows[0] ?? null;
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0]!.n;
}

async function transitions(id: string): Promise<Array<[TaskState | null, TaskState, number, string | null]>> {
  const { rows } = await pool.query<{ from_state: TaskState | null; to_state: TaskState; try_number: number; actor: string | null }>(
    'SELECT from_state, to_state, try_number, actor FROM task_transition WHERE task_instance_id = $1 ORDER BY id',
    [id],
  );
  return rows.map((r) => [r.from_state, r.to_state, r.try_number, r.actor]);
}

async function enqueue(over: Partial<NewTaskInstance> = {}): Promise<string> {
  const r = await insertTaskInstance(pool, newTask(over));
  expect(r.created).toBe(true);
  return r.id;
}

async function queued(over: Partial<NewTaskInstance> = {}) {
  const id = await enqueue(over);
  const rows = await dispatchIds(pool, [id], ACTOR);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

async function running(over: Partial<NewTaskInstance> = {}, workerId: string = randomUUID()): Promise<DeferKey> {
  const d = await queued(over);
  const row = await startRun(pool, { id: d.id, tryNumber: d.try_number, dispatchAttempt: d.dispatch_attempt, workerId, actor: ACTOR });
  expect(row?.state).toBe('running');
  return { id: d.id, tryNumber: d.try_number, dispatchAttempt: d.dispatch_attempt, workerId, actor: ACTOR };
}

async function deferred(opts: { timeoutMs?: number | null; queue?: string | null; nextKwargs?: unknown; triggerId?: string } = {}) {
  const key = await running();
  const triggerId = opts.triggerId ?? randomUUID();
  const ok = await deferRun(pool, key, {
    trigger: { id: triggerId, classpath: 'datetime', kwargsToken: 'v1.test.token', queue: opts.queue ?? null },
    nextMethod: 'resume_here',
    nextKwargs: opts.nextKwargs ?? { keep: 'me' },
    timeoutMs: opts.timeoutMs ?? null,
  });
  expect(ok).toBe(true);
  return { id: key.id, key, triggerId };
}

async function triggerer(): Promise<string> {
  const id = randomUUID();
  await registerJob(pool, { id, jobType: 'triggerer', hostname: 'test-host', pid: process.pid, capacity: 100, queues: ['default'] });
  return id;
}

// ---------------------------------------------------------------------------------------------

describe('enqueue', () => {
  it('records a scheduled task; an idempotency key used twice gives the same id and created: false', async () => {
    const first = await insertTaskInstance(pool, newTask({ idempotencyKey: 'k-1' }));
    const second = await insertTaskInstance(pool, newTask({ idempotencyKey: 'k-1', taskName: 'other' }));
    expect(first.created).toBe(true);
    expect(second).toEqual({ id: first.id, created: false, requestHash: null });
    expect(await count('task_instance')).toBe(1);
    const t = await task(first.id);
    expect(t).toMatchObject({ state: 'scheduled', try_number: 1, max_tries: 3, dispatch_attempt: 0, last_actor: ACTOR });
    expect(await transitions(first.id)).toEqual([[null, 'scheduled', 1, ACTOR]]);
  });

  it('concurrent requests with one idempotency key create exactly one task', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => insertTaskInstance(pool, newTask({ idempotencyKey: 'k-race' }))));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(await count('task_instance')).toBe(1);
  });

  it('tasks without a key are independent', async () => {
    await enqueue();
    await enqueue();
    expect(await count('task_instance')).toBe(2);
  });

  it('an enqueue notifies the scheduler on commit; a deferral sends no NOTIFY (it would serialise commits)', async () => {
    const listener = new Client({ connectionString: env.databaseUrl });
    await listener.connect();
    try {
      const seen: string[] = [];
      listener.on('notification', (n) => seen.push(`${n.channel}:${n.payload ?? ''}`));
      await listener.query(`LISTEN ${CHANNELS.taskScheduled}`);
      await listener.query('LISTEN deferrable_trigger_created');
      await listener.query('LISTEN lifecycle_test_marker');
      await deferred({ queue: 'gpu' });
      // Notifications arrive in commit order: once the marker, sent after the deferral committed,
      // has arrived, anything the deferral sent has arrived before it.
      await pool.query('NOTIFY lifecycle_test_marker');
      await waitFor(() => seen.includes('lifecycle_test_marker:'), 5_000, 'the marker notification');
      expect(seen).toEqual([`${CHANNELS.taskScheduled}:`, 'lifecycle_test_marker:']);
    } finally {
      await listener.end();
    }
  });
});

describe('dispatch', () => {
  it('dispatchDue moves due scheduled tasks to queued, highest priority first, attempt 1', async () => {
    const low = await enqueue({ priority: -1 });
    const mid = await enqueue({ priority: 0 });
    const high = await enqueue({ priority: 5 });
    const later = await enqueue({ priority: 100, runAfter: new Date(Date.now() + 3_600_000) });

    const first = await dispatchDue(pool, 2, ACTOR);
    expect(first.map((r) => r.id)).toEqual([high, mid]);
    for (const r of first) expect(r).toMatchObject({ try_number: 1, dispatch_attempt: 1, queue: 'default' });
    expect((await task(high)).state).toBe('queued');
    expect((await task(high)).queued_at).toBeInstanceOf(Date);

    expect((await dispatchDue(pool, 10, ACTOR)).map((r) => r.id)).toEqual([low]);
    expect(await dispatchDue(pool, 10, ACTOR)).toEqual([]);
    expect((await task(later)).state).toBe('scheduled');
    // dispatchIds: only tasks still scheduled and due.
    expect(await dispatchIds(pool, [high, later], ACTOR)).toEqual([]);
    expect(await dispatchIds(pool, [], ACTOR)).toEqual([]);
  });

  it('dispatchDueWithin keeps each queue at or below its backlog mark; live workers raise the mark; the rest wait in priority order', async () => {
    const limits = { ahead: 3, workersAliveWithinMs: 60_000 };
    const io = await Promise.all(Array.from({ length: 6 }, (_, i) => enqueue({ queue: 'io', priority: i })));
    const cpu = await Promise.all(Array.from({ length: 2 }, () => enqueue({ queue: 'cpu' })));
    // No worker serves either queue: the mark is `ahead` (3).
    let r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r.rows.map((x) => x.id).slice(0, 3)).toEqual([io[5], io[4], io[3]]); // priority order across queues
    expect(
      r.rows
        .map((x) => x.id)
        .slice(3)
        .sort(),
    ).toEqual([...cpu].sort());
    expect(r.held).toBe(false); // io is full, but no live worker serves it: no quick look needed
    r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r).toEqual({ rows: [], held: false });
    expect(await count(`task_instance WHERE queue = 'io' AND state = 'scheduled'`)).toBe(3);

    // A live worker with 2 slots on each of two queues serves io: mark = max(3, 2 * 2) = 4, room 1.
    await registerJob(pool, { id: randomUUID(), jobType: 'worker', hostname: 'w', pid: 1, capacity: 4, queues: ['io', 'other'] });
    r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r.rows.map((x) => x.id)).toEqual([io[2]]);
    expect(r.held).toBe(true); // io is served and now at its mark: look again soon
    r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r).toEqual({ rows: [], held: true });

    // The workers drain io: dispatch goes on, highest priority first, up to the mark.
    const more = await enqueue({ queue: 'io', priority: 9 });
    await pool.query(`UPDATE task_instance SET state = 'running' WHERE queue = 'io' AND state = 'queued'`);
    r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r.rows.map((x) => x.id)).toEqual([more, io[1], io[0]]);
    expect(r.held).toBe(false); // 3 queued, mark 4: below the mark
    // A batch limit smaller than the room takes the highest priorities first.
    const [p7, p8] = [await enqueue({ queue: 'io', priority: 7 }), await enqueue({ queue: 'io', priority: 8 })];
    r = await dispatchDueWithin(pool, 1, ACTOR, limits);
    expect(r.rows.map((x) => x.id)).toEqual([p8]);
    expect(r.held).toBe(true); // 4 queued: at the mark
    expect(await dispatchDueWithin(pool, 1, ACTOR, limits)).toEqual({ rows: [], held: true });
    // A worker whose heartbeat is too old does not count: the mark falls back to `ahead` (3).
    await pool.query(`UPDATE job SET latest_heartbeat = now() - interval '1 hour'`);
    await pool.query(`UPDATE task_instance SET state = 'running' WHERE queue = 'io' AND state = 'queued' AND id <> $1`, [p8]);
    r = await dispatchDueWithin(pool, 10, ACTOR, limits);
    expect(r.rows.map((x) => x.id)).toEqual([p7]);
    expect(await count(`task_instance WHERE queue = 'io' AND state = 'queued'`)).toBe(2);
  });

  it('dispatchDueWithin on a full queue does not read its waiting rows', async () => {
    const limits = { ahead: 1, workersAliveWithinMs: 60_000 };
    await Promise.all(Array.from({ length: 200 }, () => enqueue({ queue: 'busy' })));
    await registerJob(pool, { id: randomUUID(), jobType: 'worker', hostname: 'w', pid: 1, capacity: 1, queues: ['busy'] });
    expect((await dispatchDueWithin(pool, 10, ACTOR, limits)).rows).toHaveLength(2); // mark = 2 x 1 slot
    await pool.query('ANALYZE task_instance');
    // One connection for the polls and the reads: a backend sends its statistics to the shared
    // counters only now and then (PostgreSQL 15: at most every second, when idle);
    // pg_stat_force_next_flush() makes it send them as its next statement ends, so the reads
    // after it see every probe of the polls before it.
    const client = await pool.connect();
    try {
      const read = async () => {
        await client.query('SELECT pg_stat_force_next_flush()');
        await client.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await client.query<{ scans: string; tuples: string }>(
          `SELECT idx_scan AS scans, idx_tup_read AS tuples FROM pg_stat_user_indexes WHERE indexrelname = 'task_instance_dispatch_idx'`,
        );
        return { scans: Number(rows[0]!.scans), tuples: Number(rows[0]!.tuples) };
      };
      const before = await read();
      for (let i = 0; i < 5; i++) expect(await dispatchDueWithin(client, 10, ACTOR, limits)).toEqual({ rows: [], held: true });
      const after = await read();
      // The counters moved: the polls did use the index (a measure that saw nothing proves nothing).
      expect(after.scans - before.scans).toBeGreaterThanOrEqual(5);
      expect(after.tuples - before.tuples).toBeGreaterThan(0);
      // Five polls of a full queue holding 198 rows: a few index probes each (finding the queues),
      // not 198 rows each.
      expect(after.tuples - before.tuples).toBeLessThan(5 * 20);
    } finally {
      client.release();
    }
  });

  it('two schedulers dispatching at once never take the same task', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, () => enqueue()));
    const [a, b] = await Promise.all([dispatchDue(pool, 20, 'a'), dispatchDue(pool, 20, 'b')]);
    const taken = [...a, ...b].map((r) => r.id);
    expect(new Set(taken).size).toBe(taken.length);
    expect(taken.sort()).toEqual([...ids].sort());
    expect(await count(`task_instance WHERE dispatch_attempt = 1 AND state = 'queued'`)).toBe(20);
  });

  it('a stale queued task gets a new dispatch attempt; the old attempt can no longer start', async () => {
    const d = await queued();
    await sleep(30);
    const stale = await staleQueued(pool, 10, 10);
    expect(stale.map((r) => r.id)).toEqual([d.id]);
    expect(await staleQueued(pool, 60_000, 10)).toEqual([]);

    const again = await redispatch(pool, stale[0]!, ACTOR);
    expect(again).toMatchObject({ id: d.id, dispatch_attempt: 2, try_number: 1 });
    // A second scheduler redispatching from the same stale read changes nothing.
    expect(await redispatch(pool, stale[0]!, ACTOR)).toBeNull();

    const workerId = randomUUID();
    expect(await startRun(pool, { id: d.id, tryNumber: 1, dispatchAttempt: 1, workerId, actor: ACTOR })).toBeNull();
    expect(await startRun(pool, { id: d.id, tryNumber: 1, dispatchAttempt: 2, workerId, actor: ACTOR })).not.toBeNull();
    // Re-dispatching is not a state change: no audit row for it.
    expect((await transitions(d.id)).map(([f, t]) => `${f}->${t}`)).toEqual(['null->scheduled', 'scheduled->queued', 'queued->running']);
  });
});

describe('startRun (compare-and-set)', () => {
  it('starts only the exact try and dispatch attempt, once', async () => {
    const d = await queued();
    const workerId = randomUUID();
    const base = { id: d.id, workerId, actor: ACTOR };
    expect(d.dispatch_attempt).toBe(1);
    expect(await startRun(pool, { ...base, tryNumber: 1, dispatchAttempt: 2 })).toBeNull();
    expect(await startRun(pool, { ...base, tryNumber: 2, dispatchAttempt: 1 })).toBeNull();
    expect(await startRun(pool, { ...base, id: randomUUID(), tryNumber: 1, dispatchAttempt: 1 })).toBeNull();
    expect((await task(d.id)).state).toBe('queued');

    const row = await startRun(pool, { ...base, tryNumber: 1, dispatchAttempt: 1 });
    expect(row).toMatchObject({ id: d.id, state: 'running', worker_id: workerId, try_number: 1, dispatch_attempt: 1, args: { n: 1 } });
    expect(await startRun(pool, { ...base, tryNumber: 1, dispatchAttempt: 1 })).toBeNull();
    expect(await startRun(pool, { ...base, workerId: randomUUID(), tryNumber: 1, dispatchAttempt: 1 })).toBeNull();
    const t = await task(d.id);
    expect(t.worker_id).toBe(workerId);
    expect(t.heartbeat_at).toBeInstanceOf(Date);
    expect(t.started_at).toBeInstanceOf(Date);
  });

  it('two workers racing for one job: exactly one runs it', async () => {
    const d = await queued();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => startRun(pool, { id: d.id, tryNumber: 1, dispatchAttempt: 1, workerId: randomUUID(), actor: ACTOR })),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
  });
});

describe('succeedRun / failRun / retries', () => {
  it('succeeds only for the worker holding the try', async () => {
    const key = await running();
    expect(await succeedRun(pool, { ...key, workerId: randomUUID() }, { ok: 1 })).toBe(false);
    expect(await succeedRun(pool, { ...key, tryNumber: 2 }, { ok: 1 })).toBe(false);
    expect(await succeedRun(pool, key, { ok: 1 })).toBe(true);
    expect(await succeedRun(pool, key, { ok: 2 })).toBe(false);
    const t = await task(key.id);
    expect(t).toMatchObject({ state: 'success', result: { ok: 1 }, error: null, next_method: null });
    expect(t.ended_at).toBeInstanceOf(Date);
  });

  it('a void result is stored as JSON null', async () => {
    const key = await running();
    expect(await succeedRun(pool, key, undefined)).toBe(true);
    expect((await task(key.id)).result).toBeNull();
  });

  it('failRun without retry fails the task for good', async () => {
    const key = await running();
    const error = { code: 'TASK_FAILED', type: 'TaskFailedError', message: 'boom' };
    expect(await failRun(pool, { ...key, workerId: randomUUID() }, error, null)).toBe(false);
    expect(await failRun(pool, key, error, null)).toBe(true);
    const t = await task(key.id);
    expect(t).toMatchObject({ state: 'failed', error });
    expect(t.ended_at).toBeInstanceOf(Date);
    expect(await retriesDue(pool, 10, ACTOR)).toEqual([]);
  });

  it('failRun with retry -> up_for_retry; retriesDue increments the try once the delay has passed, once', async () => {
    const key = await running();
    const error = { code: 'TASK_FAILED', type: 'TaskFailedError', message: 'try again' };
    expect(await failRun(pool, key, error, 60_000)).toBe(true);
    const t = await task(key.id);
    expect(t).toMatchObject({ state: 'up_for_retry', error, try_number: 1 });
    expect(t.ended_at).toBeNull();
    // run_after = the failure's now() + the delay (updated_at is the same now()).
    expect(t.run_after.getTime() - t.updated_at.getTime()).toBe(60_000);

    expect(await retriesDue(pool, 10, ACTOR)).toEqual([]);
    // The failed try's worker cannot touch it any more.
    expect(await succeedRun(pool, key, 'late')).toBe(false);
    // The delay passes (moved in the database rather than slept).
    await pool.query(`UPDATE task_instance SET run_after = now() - interval '1 millisecond' WHERE id = $1`, [key.id]);
    expect(await retriesDue(pool, 10, ACTOR)).toEqual([key.id]);
    expect(await retriesDue(pool, 10, ACTOR)).toEqual([]);
    const r = await task(key.id);
    expect(r).toMatchObject({ state: 'scheduled', try_number: 2, worker_id: null, heartbeat_at: null, next_method: null });

    // The next try dispatches and starts with try 2; a message for try 1 matches nothing.
    const [d] = await dispatchIds(pool, [key.id], ACTOR);
    expect(d).toMatchObject({ try_number: 2, dispatch_attempt: 2 });
    expect(await startRun(pool, { id: key.id, tryNumber: 1, dispatchAttempt: 2, workerId: key.workerId, actor: ACTOR })).toBeNull();
    expect(await startRun(pool, { id: key.id, tryNumber: 2, dispatchAttempt: 2, workerId: key.workerId, actor: ACTOR })).not.toBeNull();
    expect((await transitions(key.id)).slice(3)).toEqual([
      ['running', 'up_for_retry', 1, ACTOR],
      ['up_for_retry', 'scheduled', 2, ACTOR],
      ['scheduled', 'queued', 2, ACTOR],
      ['queued', 'running', 2, ACTOR],
    ]);
  });

  it('a retry with no delay is due at once', async () => {
    const key = await running();
    expect(await failRun(pool, key, { code: 'TASK_FAILED' }, 0)).toBe(true);
    expect(await retriesDue(pool, 10, ACTOR)).toEqual([key.id]);
  });
});

describe('deferRun', () => {
  it('writes the trigger row and the deferred state together', async () => {
    const key = await running();
    const triggerId = randomUUID();
    const ok = await deferRun(pool, key, {
      trigger: { id: triggerId, classpath: 'file', kwargsToken: 'v1.abc.def', queue: 'io' },
      nextMethod: 'on_file',
      nextKwargs: { a: 1 },
      timeoutMs: 60_000,
    });
    expect(ok).toBe(true);
    const t = await task(key.id);
    expect(t).toMatchObject({
      state: 'deferred',
      trigger_id: triggerId,
      next_method: 'on_file',
      next_kwargs: { a: 1 },
      worker_id: null,
      heartbeat_at: null,
      try_number: 1,
    });
    expect(t.trigger_timeout!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(await triggerRow(triggerId)).toMatchObject({ classpath: 'file', kwargs: 'v1.abc.def', queue: 'io', triggerer_id: null, event: null });
  });

  it('when the compare-and-set does not match, no trigger row is inserted', async () => {
    const key = await running();
    const attempt = (k: DeferKey, triggerId: string) =>
      deferRun(pool, k, {
        trigger: { id: triggerId, classpath: 'datetime', kwargsToken: 't', queue: null },
        nextMethod: 'm',
        nextKwargs: {},
        timeoutMs: null,
      });
    const wrongWorker = randomUUID();
    const wrongTry = randomUUID();
    const unknownTask = randomUUID();
    expect(await attempt({ ...key, workerId: randomUUID() }, wrongWorker)).toBe(false);
    expect(await attempt({ ...key, tryNumber: 2 }, wrongTry)).toBe(false);
    // The same try, worker and task, but another dispatch: a resumed run of this try.
    expect(await attempt({ ...key, dispatchAttempt: key.dispatchAttempt + 1 }, randomUUID())).toBe(false);
    expect(await attempt({ ...key, id: randomUUID() }, unknownTask)).toBe(false);
    expect(await count('trigger')).toBe(0);
    expect((await task(key.id)).state).toBe('running');

    const good = randomUUID();
    expect(await attempt(key, good)).toBe(true);
    // A repeated deferral of the same try (a retried message) adds nothing.
    expect(await attempt(key, randomUUID())).toBe(false);
    expect((await pool.query<{ id: string }>('SELECT id FROM trigger')).rows.map((r) => r.id)).toEqual([good]);
    expect((await task(key.id)).trigger_timeout).toBeNull();
  });

  it('a deferral of a task that was cancelled meanwhile inserts nothing', async () => {
    const key = await running();
    expect(await cancelTask(pool, key.id, ACTOR)).toBe(true);
    const ok = await deferRun(pool, key, {
      trigger: { id: randomUUID(), classpath: 'datetime', kwargsToken: 't', queue: null },
      nextMethod: 'm',
      nextKwargs: {},
      timeoutMs: null,
    });
    expect(ok).toBe(false);
    expect(await count('trigger')).toBe(0);
  });
});

describe('triggers: claim, record, release', () => {
  it('two triggerers claiming at once take disjoint sets that cover every waiting trigger', async () => {
    const all = (await Promise.all(Array.from({ length: 12 }, () => deferred()))).map((d) => d.triggerId).sort();
    const [a, b] = [await triggerer(), await triggerer()];
    for (let round = 0; round < 3; round++) {
      const claim = (id: string) => claimTriggers(pool, { triggererId: id, limit: 12, healthThresholdMs: 30_000, queues: ['default'] });
      const [ca, cb] = await Promise.all([claim(a), claim(b)]);
      const ia = ca.map((r) => r.id);
      const ib = cb.map((r) => r.id);
      expect(ia.filter((id) => ib.includes(id))).toEqual([]);
      expect([...ia, ...ib].sort()).toEqual(all);
      expect([...(await assignedTriggerIds(pool, a))].sort()).toEqual([...ia].sort());
      expect([...(await assignedTriggerIds(pool, b))].sort()).toEqual([...ib].sort());
      // Nothing is left to claim while both are alive.
      expect(await claim(randomUUID())).toEqual([]);
      expect((await releaseTriggers(pool, a)) + (await releaseTriggers(pool, b))).toBe(12);
      expect(await count('trigger WHERE triggerer_id IS NOT NULL')).toBe(0);
    }
  });

  it('respects the limit and the queues, and returns what the triggerer needs to run', async () => {
    const plain = await Promise.all(Array.from({ length: 3 }, () => deferred()));
    const gpu = await deferred({ queue: 'gpu' });
    const a = await triggerer();
    const first = await claimTriggers(pool, { triggererId: a, limit: 2, healthThresholdMs: 30_000, queues: ['default'] });
    expect(first).toHaveLength(2);
    const waiting = plain.find((d) => d.triggerId === first[0]!.id)!;
    expect(first[0]).toEqual({ id: waiting.triggerId, classpath: 'datetime', kwargs: 'v1.test.token', queue: null, task_instance_id: waiting.id });
    const second = await claimTriggers(pool, { triggererId: a, limit: 10, healthThresholdMs: 30_000, queues: ['default'] });
    expect([...first, ...second].map((r) => r.id).sort()).toEqual(plain.map((d) => d.triggerId).sort());
    expect(await claimTriggers(pool, { triggererId: a, limit: 0, healthThresholdMs: 30_000, queues: ['gpu'] })).toEqual([]);
    const g = await claimTriggers(pool, { triggererId: a, limit: 10, healthThresholdMs: 30_000, queues: ['gpu', 'default'] });
    expect(g.map((r) => r.id)).toEqual([gpu.triggerId]);
  });

  it('takes over the triggers of a triggerer whose heartbeat is too old, not those of a live one', async () => {
    const d1 = await deferred();
    const d2 = await deferred();
    const [live, dead, other] = [await triggerer(), await triggerer(), await triggerer()];
    const opts = { limit: 1, healthThresholdMs: 30_000, queues: ['default'] };
    expect(await claimTriggers(pool, { ...opts, triggererId: live })).toHaveLength(1);
    expect(await claimTriggers(pool, { ...opts, triggererId: dead })).toHaveLength(1);
    expect(await claimTriggers(pool, { ...opts, limit: 10, triggererId: other })).toEqual([]);

    await pool.query(`UPDATE job SET latest_heartbeat = now() - interval '1 minute' WHERE id = $1`, [dead]);
    const taken = await claimTriggers(pool, { ...opts, limit: 10, triggererId: other });
    expect(taken).toHaveLength(1);
    expect([d1.triggerId, d2.triggerId]).toContain(taken[0]!.id);
    expect(await assignedTriggerIds(pool, dead)).toEqual(new Set());
    expect(await heartbeatJob(pool, live, 1)).toBe(true);
  });

  it('takes over from a triggerer that ended without releasing, oldest first across unassigned and taken-over triggers', async () => {
    const [ended, other] = [await triggerer(), await triggerer()];
    const opts = { healthThresholdMs: 30_000, queues: ['default'] };
    const held = await deferred();
    expect(await claimTriggers(pool, { ...opts, limit: 10, triggererId: ended })).toHaveLength(1);
    const fresh = [await deferred(), await deferred()];
    // Created in this order: held first. The first claim comes from ended's, the next from the rest.
    await pool.query(`UPDATE trigger SET created_at = now() - interval '1 minute' WHERE id = $1`, [held.triggerId]);
    await pool.query(`UPDATE job SET state = 'ended' WHERE id = $1`, [ended]);
    expect((await claimTriggers(pool, { ...opts, limit: 1, triggererId: other })).map((r) => r.id)).toEqual([held.triggerId]);
    const rest = await claimTriggers(pool, { ...opts, limit: 10, triggererId: other });
    expect(rest.map((r) => r.id).sort()).toEqual(fresh.map((d) => d.triggerId).sort());
    expect(await assignedTriggerCount(pool, other)).toBe(3);
  });

  it('a trigger held by a live process that is not a triggerer is claimable', async () => {
    const d = await deferred();
    const scheduler = randomUUID();
    await registerJob(pool, { id: scheduler, jobType: 'scheduler', hostname: 'test-host', pid: process.pid, capacity: 0, queues: [] });
    await pool.query('UPDATE trigger SET triggerer_id = $1 WHERE id = $2', [scheduler, d.triggerId]);
    const a = await triggerer();
    expect((await claimTriggers(pool, { triggererId: a, limit: 10, healthThresholdMs: 30_000, queues: ['default'] })).map((r) => r.id)).toEqual([d.triggerId]);
  });

  it('counts unfired triggers for a fair share only when there are live peers', async () => {
    await Promise.all([deferred(), deferred(), deferred()]);
    const a = await triggerer();
    const load = (self: string) => triggererLoad(pool, { healthThresholdMs: 30_000, queues: ['default'], self });
    expect(await load(a)).toMatchObject({ alive: 1, unfired: null, next_expiry_ms: null });
    const b = await triggerer();
    const two = await load(a);
    expect(two).toMatchObject({ alive: 2, unfired: 3 });
    expect(two.next_expiry_ms).toBeGreaterThan(20_000);
    expect(await load(b)).toMatchObject({ alive: 2, unfired: 3 });
    // The oldest trigger nobody holds: its age, from created_at.
    await pool.query("UPDATE trigger SET created_at = now() - interval '5 seconds'");
    const aged = await load(a);
    expect(aged.unassigned_age_ms).toBeGreaterThan(4_900);
    expect(aged.unassigned_age_ms).toBeLessThan(60_000);
    await pool.query('UPDATE trigger SET triggerer_id = $1', [a]);
    expect((await load(a)).unassigned_age_ms).toBeNull();
  });

  it('does not claim a trigger that no deferred task waits on', async () => {
    const d = await deferred();
    expect(await cancelTask(pool, d.id, ACTOR)).toBe(true);
    const a = await triggerer();
    expect(await claimTriggers(pool, { triggererId: a, limit: 10, healthThresholdMs: 30_000, queues: ['default'] })).toEqual([]);
  });

  it('records the first outcome only', async () => {
    const d = await deferred();
    const a = await triggerer();
    await claimTriggers(pool, { triggererId: a, limit: 10, healthThresholdMs: 30_000, queues: ['default'] });
    expect(await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: { n: 1 } } }])).toEqual([d.triggerId]);
    expect(await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: { n: 2 } } }])).toEqual([]);
    expect(await recordTriggerOutcomes(pool, [])).toEqual([]);
    const t = await triggerRow(d.triggerId);
    expect(t?.event).toEqual({ kind: 'event', payload: { n: 1 } });
    expect(t?.fired_at).toBeInstanceOf(Date);
    // A fired trigger is no longer one the triggerer should run.
    expect(await assignedTriggerIds(pool, a)).toEqual(new Set());
    // The task is untouched until the scheduler applies the event.
    expect((await task(d.id)).state).toBe('deferred');
  });

  it('records a batch, skipping the ones already recorded', async () => {
    const [x, y] = [await deferred(), await deferred()];
    await recordTriggerOutcomes(pool, [{ triggerId: x.triggerId, outcome: { kind: 'event', payload: 'first' } }]);
    const recorded = await recordTriggerOutcomes(pool, [
      { triggerId: x.triggerId, outcome: { kind: 'event', payload: 'second' } },
      { triggerId: y.triggerId, outcome: { kind: 'failure', error: { code: 'E', message: 'm' } } },
    ]);
    expect(recorded).toEqual([y.triggerId]);
    expect((await triggerRow(x.triggerId))?.event).toEqual({ kind: 'event', payload: 'first' });
  });
});

describe('resume', () => {
  it('moves the task to scheduled with next_kwargs.event, keeps the try, and a second call changes nothing', async () => {
    const d = await deferred({ nextKwargs: { keep: 'me' } });
    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toEqual([]); // not fired yet
    await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: { status: 200 } } }]);
    await sleep(5);
    expect(await firedUnapplied(pool, 0, 10)).toEqual([d.triggerId]);
    expect(await firedUnapplied(pool, 60_000, 10)).toEqual([]);

    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toEqual([{ id: d.id, state: 'scheduled', trigger_id: d.triggerId }]);
    const t = await task(d.id);
    expect(t).toMatchObject({
      state: 'scheduled',
      try_number: 1,
      next_method: 'resume_here',
      next_kwargs: { keep: 'me', event: { status: 200 } },
      trigger_id: null,
      trigger_timeout: null,
      ended_at: null,
    });
    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toEqual([]);
    expect(await task(d.id)).toEqual(t);
    expect(await firedUnapplied(pool, 0, 10)).toEqual([]);
    // Resumed, it is dispatched like any scheduled task, with the same try.
    expect(await dispatchDue(pool, 10, ACTOR)).toEqual([expect.objectContaining({ id: d.id, try_number: 1, dispatch_attempt: 2 })]);
  });

  it('with dispatch, a resume goes on to queued in the same statement, logged as deferred -> scheduled -> queued', async () => {
    const ok = await deferred({ nextKwargs: { keep: 'me' } });
    const failed = await deferred();
    const ended = await deferred();
    await recordTriggerOutcomes(pool, [
      { triggerId: ok.triggerId, outcome: { kind: 'event', payload: { n: 1 } } },
      { triggerId: failed.triggerId, outcome: { kind: 'failure', error: { code: 'TRIGGER_FAILED', message: 'boom' } } },
      { triggerId: ended.triggerId, outcome: { kind: 'event', payload: 'done', endTask: 'success' } },
    ]);
    const resumed = await resumeFromTriggers(pool, [ok.triggerId, failed.triggerId, ended.triggerId], 'scheduler-x', { dispatch: true });
    const byId = new Map(resumed.map((r) => [r.id, r]));
    expect(byId.get(ok.id)).toEqual({
      id: ok.id,
      state: 'queued',
      trigger_id: ok.triggerId,
      dispatch: { id: ok.id, try_number: 1, dispatch_attempt: 2, queue: 'default', priority: 0, next_method: 'resume_here' },
    });
    expect(byId.get(failed.id)!.dispatch).toMatchObject({ id: failed.id, dispatch_attempt: 2, next_method: FAIL_METHOD });
    expect(byId.get(ended.id)).toEqual({ id: ended.id, state: 'success', trigger_id: ended.triggerId }); // no worker needed
    expect(await task(ok.id)).toMatchObject({ state: 'queued', next_kwargs: { keep: 'me', event: { n: 1 } }, trigger_id: null });
    expect((await task(ok.id)).queued_at).toBeInstanceOf(Date);
    expect((await transitions(ok.id)).slice(-3)).toEqual([
      ['running', 'deferred', 1, ACTOR],
      ['deferred', 'scheduled', 1, 'scheduler-x'],
      ['scheduled', 'queued', 1, 'scheduler-x'],
    ]);
    expect((await transitions(ended.id)).slice(-1)).toEqual([['deferred', 'success', 1, 'scheduler-x']]);
    // At most once: a repeat changes nothing. The dispatched attempt starts like any other.
    expect(await resumeFromTriggers(pool, [ok.triggerId], 'scheduler-x', { dispatch: true })).toEqual([]);
    expect(await startRun(pool, { id: ok.id, tryNumber: 1, dispatchAttempt: 2, workerId: randomUUID(), actor: ACTOR })).not.toBeNull();
  });

  it('a resume and its dispatch in one transaction dispatch every resumed task (run_after is rounded to ms)', async () => {
    // now() is fixed per transaction and run_after keeps milliseconds (rounded): in about half of
    // all transactions the stored run_after reads after now(). 16 transactions catch a strict
    // comparison with probability 1 - 2^-16.
    for (let i = 0; i < 16; i++) {
      const d = await deferred();
      await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: i } }]);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const resumed = await resumeFromTriggers(client, [d.triggerId], ACTOR);
        const dispatched = await dispatchIds(
          client,
          resumed.map((r) => r.id),
          ACTOR,
        );
        await client.query('COMMIT');
        expect(dispatched.map((r) => r.id)).toEqual([d.id]);
      } finally {
        client.release();
      }
    }
  });

  it.each(['success', 'failed', 'skipped'] as const)('an event with endTask %s finishes the task without a worker', async (endTask) => {
    const d = await deferred();
    await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: { done: true }, endTask } }]);
    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toEqual([{ id: d.id, state: endTask, trigger_id: d.triggerId }]);
    const t = await task(d.id);
    expect(t).toMatchObject({ state: endTask, result: { done: true }, trigger_id: null });
    expect(t.ended_at).toBeInstanceOf(Date);
    expect(await dispatchDue(pool, 10, ACTOR)).toEqual([]);
    expect((await transitions(d.id)).at(-1)).toEqual(['deferred', endTask, 1, ACTOR]);
  });

  it("a trigger failure resumes into '__fail__' with the error", async () => {
    const d = await deferred();
    const error = { code: 'TRIGGER_FAILED', message: 'connection refused' };
    await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'failure', error } }]);
    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toHaveLength(1);
    const t = await task(d.id);
    expect(t).toMatchObject({ state: 'scheduled', next_method: FAIL_METHOD, next_kwargs: { error, triggerId: d.triggerId }, trigger_id: null });
  });

  it('resumes a batch and ignores ids that do not exist', async () => {
    const ds = await Promise.all([deferred(), deferred(), deferred()]);
    await recordTriggerOutcomes(
      pool,
      ds.slice(0, 2).map((d) => ({ triggerId: d.triggerId, outcome: { kind: 'event', payload: null } })),
    );
    const resumed = await resumeFromTriggers(pool, [...ds.map((d) => d.triggerId), randomUUID()], ACTOR);
    expect(resumed.map((r) => r.id).sort()).toEqual([ds[0].id, ds[1].id].sort());
    expect((await task(ds[2].id)).state).toBe('deferred');
  });

  it('with skipLocked, passes over a task another scheduler is resuming (no wait on its lock), and the other applies it once', async () => {
    const [mine, theirs] = [await deferred(), await deferred()];
    await recordTriggerOutcomes(
      pool,
      [mine, theirs].map((d) => ({ triggerId: d.triggerId, outcome: { kind: 'event', payload: 1 } })),
    );
    const [other, self] = [await pool.connect(), await pool.connect()];
    try {
      await other.query('BEGIN');
      expect(await resumeFromTriggers(other, [theirs.triggerId], 'scheduler-b')).toHaveLength(1);
      // Both ids, as when every scheduler hears the same fired hint; the locked row is skipped
      // (a wait on its lock would fail here with lock_timeout).
      await self.query("SET lock_timeout = '2s'");
      const resumed = await resumeFromTriggers(self, [theirs.triggerId, mine.triggerId], 'scheduler-a', { skipLocked: true });
      expect(resumed.map((r) => r.id)).toEqual([mine.id]);
      await other.query('COMMIT');
    } finally {
      await self.query('RESET lock_timeout');
      other.release();
      self.release();
    }
    expect(await resumeFromTriggers(pool, [theirs.triggerId], 'scheduler-a')).toEqual([]);
    expect((await transitions(theirs.id)).filter(([from]) => from === 'deferred')).toEqual([['deferred', 'scheduled', 1, 'scheduler-b']]);
  });

  it('if the holder rolls back, a skipping resume has left the event unapplied, and a waiting one applies it', async () => {
    const d = await deferred();
    await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: 1 } }]);
    const [other, self] = [await pool.connect(), await pool.connect()];
    try {
      await other.query('BEGIN');
      expect(await resumeFromTriggers(other, [d.triggerId], 'scheduler-b')).toHaveLength(1);
      expect(await resumeFromTriggers(self, [d.triggerId], 'scheduler-a', { skipLocked: true })).toEqual([]);
      // The default waits for the row, then sees it still deferred once the holder rolls back.
      const selfPid = await backendPid(self);
      const waiting = resumeFromTriggers(self, [d.triggerId], 'scheduler-a');
      await waitForLockWaits([selfPid]);
      await other.query('ROLLBACK');
      expect((await waiting).map((r) => r.id)).toEqual([d.id]);
    } finally {
      other.release();
      self.release();
    }
    expect((await transitions(d.id)).filter(([from]) => from === 'deferred')).toEqual([['deferred', 'scheduled', 1, 'scheduler-a']]);
  });

  it('two waiting resumes of the same rows lock them in id order, whatever their plans, and do not deadlock', async () => {
    // Three tasks whose physical order (a sequential scan's) is the reverse of their trigger ids'
    // order (an index scan's on task_instance_trigger_idx). Created one after another in freshly
    // truncated tables, their row versions lie in creation order.
    const triggerIds = [randomUUID(), randomUUID(), randomUUID()].sort().reverse();
    const [x, z, y] = [
      await deferred({ triggerId: triggerIds[0] }),
      await deferred({ triggerId: triggerIds[1] }),
      await deferred({ triggerId: triggerIds[2] }),
    ];
    await recordTriggerOutcomes(
      pool,
      [x, z, y].map((d) => ({ triggerId: d.triggerId, outcome: { kind: 'event', payload: 1 } })),
    );
    const physical = (await pool.query<{ id: string }>('SELECT id FROM task_instance ORDER BY ctid')).rows.map((r) => r.id);
    expect(physical).toEqual([x.id, z.id, y.id]);

    const [seq, idx, blocker] = [await pool.connect(), await pool.connect(), await pool.connect()];
    const planOf = async (c: Queryable) =>
      JSON.stringify(
        (await c.query(`EXPLAIN (FORMAT JSON) SELECT id FROM task_instance WHERE trigger_id = ANY($1::uuid[]) AND state = 'deferred'`, [triggerIds])).rows,
      );
    try {
      // Left to their plans' order, `seq` would lock x, z, y and `idx` y, z, x: with z held
      // elsewhere, each takes its first row, then the one that gets z waits for the other's first.
      await seq.query('SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off');
      await idx.query('SET enable_seqscan = off; SET enable_bitmapscan = off');
      expect(await planOf(seq)).toContain('"Seq Scan"');
      expect(await planOf(idx)).toContain('"Index Scan"');
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM task_instance WHERE id = $1 FOR UPDATE', [z.id]);
      const pids = await Promise.all([seq, idx].map(backendPid));
      const outcomes = Promise.allSettled([resumeFromTriggers(seq, triggerIds, 'scheduler-a'), resumeFromTriggers(idx, triggerIds, 'scheduler-b')]);
      // Both statements are waiting on a row lock before z is released.
      await waitForLockWaits(pids);
      await blocker.query('COMMIT');
      const [a, b] = await outcomes;
      expect([a.status, b.status]).toEqual(['fulfilled', 'fulfilled']); // a deadlock rejects one (40P01)
      const resumed = [a, b].flatMap((r) => (r.status === 'fulfilled' ? r.value.map((v) => v.id) : []));
      expect(resumed.sort()).toEqual([x.id, z.id, y.id].sort()); // each task once, by one of them
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      for (const c of [seq, idx]) await c.query('RESET ALL').catch(() => undefined);
      for (const c of [seq, idx, blocker]) c.release();
    }
    for (const d of [x, z, y]) expect((await transitions(d.id)).filter(([from]) => from === 'deferred')).toHaveLength(1);
  });
});

/** The server process of a connection (ask before the connection is busy with a statement). */
async function backendPid(c: Queryable): Promise<number> {
  return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

/** Waits until every one of these backends waits on a lock. */
async function waitForLockWaits(pids: number[]): Promise<void> {
  const waiting = () => count(`pg_stat_activity WHERE pid = ANY($1) AND wait_event_type = 'Lock'`, [pids]);
  await waitFor(async () => (await waiting()) === pids.length, 5_000, `backends ${pids.join(', ')} to wait on a lock`, 10);
}

describe('timeoutDeferrals', () => {
  it('sends deferrals past their timeout to __fail__ once, and a late event then changes nothing', async () => {
    const soon = await deferred({ timeoutMs: 1 });
    const late = await deferred({ timeoutMs: 60_000 });
    const never = await deferred({ timeoutMs: null });
    await sleep(20);
    expect(await timeoutDeferrals(pool, 10, ACTOR)).toEqual([soon.id]);
    expect(await timeoutDeferrals(pool, 10, ACTOR)).toEqual([]);
    const t = await task(soon.id);
    expect(t).toMatchObject({
      state: 'scheduled',
      next_method: FAIL_METHOD,
      next_kwargs: { error: { code: 'TRIGGER_TIMEOUT', message: expect.any(String) }, triggerId: soon.triggerId },
      trigger_id: null,
      trigger_timeout: null,
      try_number: 1,
    });
    for (const d of [late, never]) expect((await task(d.id)).state).toBe('deferred');

    // The trigger fires after all: the task has moved on, so nothing happens.
    await recordTriggerOutcomes(pool, [{ triggerId: soon.triggerId, outcome: { kind: 'event', payload: 1 } }]);
    expect(await resumeFromTriggers(pool, [soon.triggerId], ACTOR)).toEqual([]);
    expect(await task(soon.id)).toEqual(t);
  });

  it('a trigger that fired before the deadline wins over the timeout even if its event is not applied yet', async () => {
    const inTime = await deferred({ timeoutMs: 60_000 });
    const tooLate = await deferred({ timeoutMs: 60_000 });
    await recordTriggerOutcomes(
      pool,
      [inTime, tooLate].map((d) => ({ triggerId: d.triggerId, outcome: { kind: 'event', payload: 'ok' } })),
    );
    // Both deadlines pass (moved in the database); one trigger had fired a minute before its
    // deadline, the other a minute after it.
    await pool.query(`UPDATE task_instance SET trigger_timeout = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, [[inTime.id, tooLate.id]]);
    await pool.query(`UPDATE trigger SET fired_at = now() - interval '61 seconds' WHERE id = $1`, [inTime.triggerId]);
    expect(await timeoutDeferrals(pool, 10, ACTOR)).toEqual([tooLate.id]);
    expect((await task(inTime.id)).state).toBe('deferred');
    expect((await resumeFromTriggers(pool, [inTime.triggerId, tooLate.triggerId], ACTOR)).map((r) => r.id)).toEqual([inTime.id]);
    expect(await task(inTime.id)).toMatchObject({ state: 'scheduled', next_method: 'resume_here', next_kwargs: { event: 'ok' } });
  });
});

describe('recovery', () => {
  it('lockStaleRuns finds runs whose worker stopped heartbeating, and locks them against a second scheduler', async () => {
    const alive = randomUUID();
    const dead = randomUUID();
    const a = await running({}, alive);
    const b = await running({}, dead);
    // Both last heartbeated a minute ago (time moved in the database, not slept: a loaded machine
    // must not turn a fresh heartbeat stale); the live worker then heartbeats.
    await pool.query(`UPDATE task_instance SET heartbeat_at = now() - interval '1 minute' WHERE id = ANY($1::uuid[])`, [[a.id, b.id]]);
    expect((await heartbeatRuns(pool, alive, [a.id])).map((r) => r.id)).toEqual([a.id]);

    const c1 = await pool.connect();
    const c2 = await pool.connect();
    try {
      await c1.query('BEGIN');
      const stale = await lockStaleRuns(c1, 30_000, 10);
      expect(stale).toEqual([{ id: b.id, try_number: 1, max_tries: 3, worker_id: dead, retry_delay_ms: 1000, retry_backoff: 2, retry_max_delay_ms: 60_000 }]);
      await c2.query('BEGIN');
      expect(await lockStaleRuns(c2, 30_000, 10)).toEqual([]);
      await c2.query('COMMIT');
      // The reaper decides in the same transaction: here, retry.
      expect(await failRun(c1, { id: b.id, tryNumber: 1, workerId: dead, actor: 'reaper' }, { code: 'HEARTBEAT_LOST' }, 0)).toBe(true);
      await c1.query('COMMIT');
    } finally {
      c1.release();
      c2.release();
    }
    expect(await lockStaleRuns(pool, 30_000, 10)).toEqual([]);
    expect((await task(b.id)).state).toBe('up_for_retry');
    expect((await task(a.id)).state).toBe('running');
    // The dead worker, back from a pause, holds nothing.
    expect(await heartbeatRuns(pool, dead, [b.id])).toEqual([]);
    expect(await succeedRun(pool, b, 'late')).toBe(false);
  });

  it('deleteOrphanTriggers removes only triggers no deferred task waits on', async () => {
    const waiting = await deferred();
    const resumed = await deferred();
    const cancelled = await deferred();
    const timedOut = await deferred({ timeoutMs: 1 });
    await recordTriggerOutcomes(pool, [{ triggerId: resumed.triggerId, outcome: { kind: 'event', payload: 1 } }]);
    await resumeFromTriggers(pool, [resumed.triggerId], ACTOR);
    await cancelTask(pool, cancelled.id, ACTOR);
    await sleep(10);
    await timeoutDeferrals(pool, 10, ACTOR);

    const deleted = await deleteOrphanTriggers(pool, 100);
    expect(deleted.sort()).toEqual([resumed.triggerId, cancelled.triggerId, timedOut.triggerId].sort());
    expect(await deleteOrphanTriggers(pool, 100)).toEqual([]);
    expect((await pool.query<{ id: string }>('SELECT id FROM trigger')).rows.map((r) => r.id)).toEqual([waiting.triggerId]);
    expect((await task(waiting.id)).trigger_id).toBe(waiting.triggerId);
  });

  it('a task that left deferred by any path, even one that kept its trigger_id, neither resumes nor keeps its trigger', async () => {
    // No current statement leaves a non-deferred task pointing at a trigger; the state guards make
    // sure one that did (a manual fix, a future code path) could not resume twice or pin a trigger.
    const d = await deferred();
    await pool.query(`UPDATE task_instance SET state = 'failed', last_actor = 'manual' WHERE id = $1`, [d.id]);
    await recordTriggerOutcomes(pool, [{ triggerId: d.triggerId, outcome: { kind: 'event', payload: 1 } }]);
    expect(await resumeFromTriggers(pool, [d.triggerId], ACTOR)).toEqual([]);
    expect((await task(d.id)).state).toBe('failed');
    expect(await deleteOrphanTriggers(pool, 10)).toEqual([d.triggerId]);
  });

  it('deleteOrphanTriggers honours its limit', async () => {
    const ds = await Promise.all([deferred(), deferred(), deferred()]);
    for (const d of ds) await cancelTask(pool, d.id, ACTOR);
    expect(await deleteOrphanTriggers(pool, 2)).toHaveLength(2);
    expect(await deleteOrphanTriggers(pool, 2)).toHaveLength(1);
  });
});

describe('cancelTask', () => {
  it('cancels from every non-terminal state, once', async () => {
    const scheduled = await enqueue();
    const q = (await queued()).id;
    const r = (await running()).id;
    const d = await deferred();
    const retry = await running();
    await failRun(pool, retry, { code: 'X' }, 60_000);
    const cases: Array<[string, TaskState]> = [
      [scheduled, 'scheduled'],
      [q, 'queued'],
      [r, 'running'],
      [d.id, 'deferred'],
      [retry.id, 'up_for_retry'],
    ];
    for (const [id, from] of cases) {
      expect((await task(id)).state).toBe(from);
      expect(await cancelTask(pool, id, 'operator')).toBe(true);
      const t = await task(id);
      expect(t).toMatchObject({ state: 'cancelled', trigger_id: null, trigger_timeout: null, last_actor: 'operator' });
      expect(t.ended_at).toBeInstanceOf(Date);
      expect(await cancelTask(pool, id, 'operator')).toBe(false);
      expect((await transitions(id)).at(-1)).toEqual([from, 'cancelled', 1, 'operator']);
    }
    // A cancelled deferral's trigger is an orphan now.
    expect(await deleteOrphanTriggers(pool, 10)).toEqual([d.triggerId]);
  });

  it('does not cancel a finished task, nor an unknown one', async () => {
    const key = await running();
    await succeedRun(pool, key, 1);
    expect(await cancelTask(pool, key.id, ACTOR)).toBe(false);
    expect((await task(key.id)).state).toBe('success');
    expect(await cancelTask(pool, randomUUID(), ACTOR)).toBe(false);
  });

  it('a cancelled run cannot be completed by its worker', async () => {
    const key = await running();
    await cancelTask(pool, key.id, ACTOR);
    expect(await succeedRun(pool, key, 1)).toBe(false);
    expect(await failRun(pool, key, {}, 0)).toBe(false);
    expect(await heartbeatRuns(pool, key.workerId, [key.id])).toEqual([]);
  });
});

describe('batched worker steps (one statement for many runs)', () => {
  it('startRuns starts each matching key once, gives null to the others, in the order of the keys', async () => {
    const [a, b, c] = [await queued(), await queued(), await queued()];
    const workerId = randomUUID();
    const key = (d: typeof a, over: Partial<{ tryNumber: number; dispatchAttempt: number }> = {}) => ({
      id: d.id,
      tryNumber: over.tryNumber ?? d.try_number,
      dispatchAttempt: over.dispatchAttempt ?? d.dispatch_attempt,
      workerId,
      actor: ACTOR,
    });
    const rows = await startRuns(pool, [key(a), key(b, { dispatchAttempt: 9 }), key(c), key(a), key(b, { tryNumber: 2 })]);
    expect(rows.map((r) => r?.id ?? null)).toEqual([a.id, null, c.id, null, null]);
    expect(rows[0]).toMatchObject({ state: 'running', worker_id: workerId, try_number: 1 });
    expect((await task(b.id)).state).toBe('queued');
    // one audit row per started task, none for the refused keys
    expect(await count('task_transition WHERE task_instance_id = ANY($1) AND to_state = $2', [[a.id, b.id, c.id], 'running'])).toBe(2);
  });

  it('a key in upper case starts its run (PostgreSQL answers in lower case)', async () => {
    const d = await queued();
    const workerId = randomUUID();
    const [row] = await startRuns(pool, [
      { id: d.id.toUpperCase(), tryNumber: 1, dispatchAttempt: d.dispatch_attempt, workerId: workerId.toUpperCase(), actor: ACTOR },
    ]);
    expect(row).toMatchObject({ id: d.id, state: 'running', worker_id: workerId });
  });

  it('the run heartbeat renews only the runs the worker names, so a run it lost track of is reaped', async () => {
    const workerId = randomUUID();
    const known = await running({}, workerId);
    const orphan = await running({}, workerId); // started, but the worker never learnt it
    await pool.query(`UPDATE task_instance SET heartbeat_at = now() - interval '1 minute' WHERE id = ANY($1::uuid[])`, [[known.id, orphan.id]]);
    expect((await heartbeatRuns(pool, workerId, [known.id])).map((r) => r.id)).toEqual([known.id]);
    expect((await lockStaleRuns(pool, 30_000, 10)).map((r) => r.id)).toEqual([orphan.id]);
  });

  it('succeedRuns and deferRuns record only the runs still held, each with its own result or trigger', async () => {
    const [k1, k2, k3, k4] = [await running(), await running(), await running(), await running()];
    expect(
      await succeedRuns(pool, [
        { key: k1, result: { n: 1 } },
        { key: { ...k2, workerId: randomUUID() }, result: 'not ours' },
        { key: k3, result: [3] },
      ]),
    ).toEqual([true, false, true]);
    expect((await task(k1.id)).result).toEqual({ n: 1 });
    expect((await task(k3.id)).result).toEqual([3]);
    expect((await task(k2.id)).state).toBe('running');

    const deferral = (triggerId: string, method: string, timeoutMs: number | null) => ({
      trigger: { id: triggerId, classpath: 'datetime', kwargsToken: `token-${method}`, queue: method === 'b' ? 'io' : null },
      nextMethod: method,
      nextKwargs: { kwargs: { m: method } },
      timeoutMs,
    });
    const [t2, t4, tLost] = [randomUUID(), randomUUID(), randomUUID()];
    expect(
      await deferRuns(pool, [
        { key: k2, deferral: deferral(t2, 'a', null) },
        { key: { ...k4, tryNumber: 7 }, deferral: deferral(tLost, 'lost', null) },
        { key: k4, deferral: deferral(t4, 'b', 60_000) },
      ]),
    ).toEqual([true, false, true]);
    const r2 = await task(k2.id);
    const r4 = await task(k4.id);
    expect(r2).toMatchObject({ state: 'deferred', trigger_id: t2, next_method: 'a', next_kwargs: { kwargs: { m: 'a' } }, trigger_timeout: null });
    expect(r4).toMatchObject({ state: 'deferred', trigger_id: t4, next_method: 'b' });
    expect(r4.trigger_timeout).toBeInstanceOf(Date);
    const { rows: triggers } = await pool.query<{ id: string; kwargs: string; queue: string | null }>(
      'SELECT id, kwargs, queue FROM trigger WHERE id = ANY($1) ORDER BY kwargs',
      [[t2, t4, tLost]],
    );
    // the refused deferral left no trigger behind
    expect(triggers).toEqual([
      { id: t2, kwargs: 'token-a', queue: null },
      { id: t4, kwargs: 'token-b', queue: 'io' },
    ]);
  });
});

describe('the transition audit log', () => {
  it('records every state change of a deferred task in order, with try and actor, and nothing else', async () => {
    const id = await enqueue({ actor: 'sdk' });
    const [d1] = await dispatchDue(pool, 1, 'scheduler-1');
    const workerId = randomUUID();
    await startRun(pool, { id, tryNumber: 1, dispatchAttempt: d1!.dispatch_attempt, workerId, actor: 'worker-1' });
    await heartbeatRuns(pool, workerId, [id]);
    const triggerId = randomUUID();
    await deferRun(
      pool,
      { id, tryNumber: 1, dispatchAttempt: d1!.dispatch_attempt, workerId, actor: 'worker-1' },
      { trigger: { id: triggerId, classpath: 'datetime', kwargsToken: 't', queue: null }, nextMethod: 'cb', nextKwargs: {}, timeoutMs: null },
    );
    await recordTriggerOutcomes(pool, [{ triggerId, outcome: { kind: 'event', payload: 1 } }]);
    await resumeFromTriggers(pool, [triggerId], 'scheduler-2');
    const [d2] = await dispatchDue(pool, 1, 'scheduler-2');
    await startRun(pool, { id, tryNumber: 1, dispatchAttempt: d2!.dispatch_attempt, workerId, actor: 'worker-2' });
    await succeedRun(pool, { id, tryNumber: 1, workerId, actor: 'worker-2' }, 'done');

    const log = await transitions(id);
    expect(log).toEqual([
      [null, 'scheduled', 1, 'sdk'],
      ['scheduled', 'queued', 1, 'scheduler-1'],
      ['queued', 'running', 1, 'worker-1'],
      ['running', 'deferred', 1, 'worker-1'],
      ['deferred', 'scheduled', 1, 'scheduler-2'],
      ['scheduled', 'queued', 1, 'scheduler-2'],
      ['queued', 'running', 1, 'worker-2'],
      ['running', 'success', 1, 'worker-2'],
    ]);
    // Every recorded change is one the domain's state machine allows.
    for (const [from, to] of log) expect(canTransition(from, to)).toBe(true);
    const { rows } = await pool.query<{ at: Date }>('SELECT at FROM task_transition WHERE task_instance_id = $1 ORDER BY id', [id]);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.at.getTime());
  });

  it('refused compare-and-sets leave no audit rows', async () => {
    const key = await running();
    const before = await transitions(key.id);
    await startRun(pool, { id: key.id, tryNumber: 1, dispatchAttempt: 1, workerId: randomUUID(), actor: 'x' });
    await succeedRun(pool, { ...key, workerId: randomUUID() }, 1);
    await heartbeatRuns(pool, key.workerId, [key.id]);
    expect(await transitions(key.id)).toEqual(before);
  });
});

describe('jobs and rejections', () => {
  it('registers, heartbeats, lists and ends a job', async () => {
    const id = randomUUID();
    await registerJob(pool, { id, jobType: 'worker', hostname: 'h1', pid: 42, capacity: 8, queues: ['default', 'io'] });
    expect(await heartbeatJob(pool, id, 3)).toBe(true);
    const [row] = await listJobs(pool, { jobType: 'worker' });
    expect(row).toMatchObject({
      id,
      job_type: 'worker',
      hostname: 'h1',
      pid: 42,
      state: 'running',
      capacity: 8,
      load: 3,
      queues: ['default', 'io'],
      ended_at: null,
    });
    expect(row!.heartbeat_age_ms).toBeGreaterThanOrEqual(0);
    expect(row!.heartbeat_age_ms).toBeLessThan(10_000);
    expect(await listJobs(pool, { jobType: 'scheduler' })).toEqual([]);

    await endJob(pool, id);
    expect(await heartbeatJob(pool, id, 0)).toBe(false);
    const [ended] = await listJobs(pool);
    expect(ended).toMatchObject({ id, state: 'success' });
    expect(ended!.ended_at).toBeInstanceOf(Date);
  });

  it('records rejections with a bounded excerpt', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const big = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`${'k'.repeat(50)}${i}`, 'x'.repeat(2000)]));
    await recordRejection(pool, { source: 'task-request', jobId: 'j1', reason: 'r'.repeat(3000), excerpt: big });
    await recordRejection(pool, { source: 'task-request', reason: 'circular', excerpt: circular });
    await recordRejection(pool, { source: 'task-request', reason: 'none' });
    const { rows } = await pool.query<{ job_id: string | null; reason: string; excerpt: string | null }>(
      'SELECT job_id, reason, excerpt FROM rejection ORDER BY id',
    );
    expect(rows[0]!.job_id).toBe('j1');
    expect(rows[0]!.reason).toHaveLength(2000);
    expect(rows[0]!.excerpt).toHaveLength(500);
    expect(rows[0]!.excerpt!.startsWith(`{"${'k'.repeat(50)}0":"[redacted string, 2000 chars]"`)).toBe(true);
    expect(rows[1]!.excerpt).toBe('{"self":"[redacted object, 1 key]"}');
    expect(rows[2]).toEqual({ job_id: null, reason: 'none', excerpt: null });
  });
});
