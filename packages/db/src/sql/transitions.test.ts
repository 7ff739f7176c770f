import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { canTransition, TASK_STATES, TRANSITIONS, type TaskState } from '@deferrable/domain';
import { createTestEnv, type TestEnv } from '@deferrable/testkit';
import { inTransaction } from '../client';
import { dispatchDueWithin, dispatchIds } from './dispatch';
import { insertTaskInstance } from './enqueue';
import { registerJob } from './jobs';
import { cancelTask, lockStaleRuns, reapRuns } from './recovery';
import { resumeFromTriggers, retriesDue, timeoutDeferrals } from './resume';
import { deferRuns, failRun, startRuns, succeedRuns } from './run';

/**
 * The transition table in packages/domain is the single source of truth for task states: no SQL
 * statement names a task state in a literal of its own (they are built with sqlState, fromSql and
 * toSql), and every statement, run against the real database, moves tasks only along the table's
 * transitions (read back from the audit log, which the database writes itself), covering them all.
 */
const SQL_DIR = __dirname;

describe('SQL statements and the transition table', () => {
  test('no statement writes a task state as a literal of its own', () => {
    const states = TASK_STATES.join('|');
    const offenders: string[] = [];
    for (const file of readdirSync(SQL_DIR).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const source = readFileSync(path.join(SQL_DIR, file), 'utf8');
      // The statements are the template literals; TypeScript's own string types are not SQL.
      for (const template of source.match(/`[^`]*`/g) ?? []) {
        // Fragments built from the table (${sqlState('queued')}) are what a statement should use.
        const sql = template.replace(/\$\{[^}]*\}/g, '');
        for (const m of sql.matchAll(new RegExp(`'(${states})'`, 'g'))) offenders.push(`${file}: ${m[0]}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  describe('against the real database', () => {
    let env: TestEnv;
    const worker = randomUUID();
    const actor = 'transitions-test';
    beforeAll(async () => {
      env = await createTestEnv('transitions');
      await registerJob(env.db.pool, { id: worker, jobType: 'worker', hostname: 'h', pid: 1, capacity: 100, queues: ['default'] });
    });
    afterAll(async () => {
      await env.cleanup();
    });

    const pool = () => env.db.pool;
    async function enqueue(n: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const base = { taskName: 't', args: {}, queue: 'default', priority: 0, maxTries: 3, retryDelayMs: 0, retryBackoff: 1, retryMaxDelayMs: 0 };
        ids.push((await insertTaskInstance(pool(), { ...base, id: randomUUID(), executionTimeoutMs: null, runAfter: null, idempotencyKey: null, actor })).id);
      }
      return ids;
    }
    async function row(id: string) {
      return (await pool().query('SELECT state, try_number, dispatch_attempt, trigger_id FROM task_instance WHERE id = $1', [id])).rows[0] as {
        state: TaskState;
        try_number: number;
        dispatch_attempt: number;
        trigger_id: string | null;
      };
    }
    async function dispatchAll(): Promise<void> {
      while ((await dispatchDueWithin(pool(), 100, actor, { ahead: 1000, workersAliveWithinMs: 60_000 })).rows.length > 0);
    }
    async function start(ids: string[]): Promise<void> {
      const keys = await Promise.all(ids.map(async (id) => ({ id, ...(await row(id)) })));
      const started = await startRuns(
        pool(),
        keys.map((k) => ({ id: k.id, tryNumber: k.try_number, dispatchAttempt: k.dispatch_attempt, workerId: worker, actor })),
      );
      expect(started.every(Boolean)).toBe(true);
    }
    const key = async (id: string) => ({ id, tryNumber: (await row(id)).try_number, workerId: worker, actor });
    async function defer(ids: string[]): Promise<string[]> {
      const runs = await Promise.all(
        ids.map(async (id) => ({
          key: { ...(await key(id)), dispatchAttempt: (await row(id)).dispatch_attempt },
          deferral: {
            trigger: { id: randomUUID(), classpath: 'datetime', kwargsToken: 'x', queue: null },
            nextMethod: 'resume',
            nextKwargs: {},
            timeoutMs: 60_000,
          },
        })),
      );
      expect((await deferRuns(pool(), runs)).every(Boolean)).toBe(true);
      return runs.map((r) => r.deferral.trigger.id);
    }
    const fire = (triggerId: string, event: unknown) =>
      pool().query('UPDATE trigger SET event = $2, fired_at = now() WHERE id = $1', [triggerId, JSON.stringify(event)]);

    test('every statement moves tasks only along the table, and together they cover it', async () => {
      // scheduled -> queued -> running -> success
      const [a, b, c, d, e, f, g, h, i, j, k] = await enqueue(11);
      const all = [a, b, c, d, e, f, g, h, i, j, k] as string[];
      await dispatchAll();
      await start(all);
      expect(await succeedRuns(pool(), [{ key: await key(a!), result: 1 }])).toEqual([true]);
      // running -> failed; running -> up_for_retry -> scheduled -> queued (dispatchIds)
      expect(await failRun(pool(), await key(b!), { code: 'X' }, null)).toBe(true);
      expect(await failRun(pool(), await key(c!), { code: 'X' }, 0)).toBe(true);
      expect(await retriesDue(pool(), 10, actor)).toEqual([c]);
      expect((await dispatchIds(pool(), [c!], actor)).map((r) => r.id)).toEqual([c]);
      // running -> deferred, then each way out of deferred
      const [td, te, tf, tg] = await defer([d!, e!, f!, g!, h!]);
      await fire(td!, { kind: 'event', payload: 1 });
      await fire(te!, { kind: 'event', payload: 1, endTask: 'success' });
      await fire(tf!, { kind: 'event', payload: 1, endTask: 'failed' });
      await fire(tg!, { kind: 'event', payload: 1, endTask: 'skipped' });
      await resumeFromTriggers(pool(), [td!, te!, tf!, tg!], actor);
      expect((await Promise.all([d!, e!, f!, g!].map(row))).map((r) => r.state)).toEqual(['scheduled', 'success', 'failed', 'skipped']);
      await pool().query("UPDATE task_instance SET trigger_timeout = now() - interval '1 second' WHERE id = $1", [h]);
      expect(await timeoutDeferrals(pool(), 10, actor)).toEqual([h]);
      // A resume dispatched in the same statement (deferred -> scheduled -> queued in the log).
      const [ti] = await defer([i!]);
      await fire(ti!, { kind: 'event', payload: 1 });
      expect((await resumeFromTriggers(pool(), [ti!], actor, { dispatch: true }))[0]?.state).toBe('queued');
      // The reaper: running -> up_for_retry and running -> failed.
      await pool().query("UPDATE task_instance SET heartbeat_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])", [[j, k]]);
      await inTransaction(pool(), async (client) => {
        const stale = await lockStaleRuns(client, 1000, 10);
        expect(new Set(stale.map((s) => s.id))).toEqual(new Set([j, k]));
        const reaped = stale.map((s) => ({ id: s.id, tryNumber: s.try_number, error: { code: 'HEARTBEAT_LOST' }, retryInMs: s.id === j ? 0 : null }));
        expect(new Set(await reapRuns(client, reaped, actor))).toEqual(new Set([j, k]));
      });
      // Cancel from every state that is not terminal: queued (c, d), running (l), deferred (m),
      // up_for_retry (j), scheduled (n).
      const [l, m] = await enqueue(2);
      await dispatchAll();
      await start([l!, m!]);
      await defer([m!]);
      const [n] = await enqueue(1);
      for (const id of [d!, c!, l!, m!, j!, n!]) expect(await cancelTask(pool(), id, actor)).toBe(true);
      // Terminal states stay terminal.
      for (const id of [a!, b!, e!]) expect(await cancelTask(pool(), id, actor)).toBe(false);

      const { rows } = await pool().query<{ from_state: TaskState | null; to_state: TaskState }>('SELECT DISTINCT from_state, to_state FROM task_transition');
      const seen = rows.map((r) => `${r.from_state ?? '(new)'} -> ${r.to_state}`).sort();
      const refused = rows.filter((r) => !canTransition(r.from_state, r.to_state)).map((r) => `${r.from_state} -> ${r.to_state}`);
      expect(refused).toEqual([]);
      // Every transition of the table is performed by some statement, but a task that starts
      // deferred (start from a trigger), which no statement does yet.
      const expected = Object.values(TRANSITIONS)
        .flatMap((t) => (t.from as readonly (TaskState | null)[]).map((from) => `${from ?? '(new)'} -> ${t.to}`))
        .filter((pair) => pair !== '(new) -> deferred');
      expect(seen).toEqual([...new Set(expected)].sort());
    });
  });
});
